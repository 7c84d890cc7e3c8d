#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/zds/seqpacket.h"
#include "test/common/zds/zds_test_support.h"
#include "test/support/paths.h"
#include "test/support/run_coro.h"

using namespace ambient;
using namespace ambient::zds;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::awaitable;

namespace {

// Sends with sendmsg directly, bypassing SeqPacketSocket::send's own bounds (to test the receiver's).
void raw_send(int sock, const std::string& bytes, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  REQUIRE(::sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

// Leaves a socket file at `path` that nobody listens on (what a crashed agent leaves behind).
void make_stale_socket_file(const std::string& path) {
  net::UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
  REQUIRE(fd.valid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
}

std::pair<SeqPacketSocket, SeqPacketSocket> make_pair(asio::io_context& io) {
  auto p = SeqPacketSocket::pair(io.get_executor());
  REQUIRE(p);
  return std::move(*p);
}

}  // namespace

TEST_SUITE("common/zds/seqpacket") {
  TEST_CASE("a packet with an fd arrives whole; the fd refers to the same file and is close-on-exec") {
    asio::io_context io;
    test::ScratchDir dir;
    auto file = test::open_scratch_file(dir.file("netns-a"));
    auto [a, b] = make_pair(io);
    auto sent = test::run_coro(io, a.send("hello", std::vector<int>{file.get()}));
    REQUIRE(sent);
    auto got = test::run_coro(io, b.receive(1s));
    REQUIRE(got);
    CHECK(got->bytes == "hello");
    REQUIRE(got->fds.size() == 1);
    CHECK(got->fds[0].get() != file.get());
    CHECK(test::file_identity(got->fds[0].get()) == test::file_identity(file.get()));
    CHECK((::fcntl(got->fds[0].get(), F_GETFD) & FD_CLOEXEC) != 0);
  }

  TEST_CASE("packet boundaries are kept: two sends, two receives") {
    asio::io_context io;
    auto [a, b] = make_pair(io);
    REQUIRE(test::run_coro(io, a.send("one")));
    REQUIRE(test::run_coro(io, a.send(std::string(kMaxPacket, 'x'))));
    auto first = test::run_coro(io, b.receive(1s));
    auto second = test::run_coro(io, b.receive(1s));
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->bytes == "one");
    CHECK(second->bytes.size() == kMaxPacket);
  }

  TEST_CASE("send refuses what the receiver would refuse") {
    asio::io_context io;
    auto [a, b] = make_pair(io);
    auto too_long = test::run_coro(io, a.send(std::string(kMaxPacket + 1, 'x')));
    REQUIRE_FALSE(too_long);
    CHECK(too_long.error().kind == ErrorKind::InvalidArgument);
    std::vector<int> many(kMaxFds + 1, STDIN_FILENO);
    auto too_many = test::run_coro(io, a.send("x", many));
    REQUIRE_FALSE(too_many);
    CHECK(too_many.error().kind == ErrorKind::InvalidArgument);
  }

  TEST_CASE("a 1025-byte packet is Parse (truncated), its fd is closed, and the socket stays usable") {
    asio::io_context io;
    auto [a, b] = make_pair(io);
    net::UniqueFd extra(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    const int before = test::open_fd_count();
    raw_send(a.native_handle(), std::string(kMaxPacket + 1, 'x'), {extra.get()});
    auto got = test::run_coro(io, b.receive(1s));
    REQUIRE_FALSE(got);
    CHECK(got.error().kind == ErrorKind::Parse);
    CHECK(test::open_fd_count() == before);
    REQUIRE(test::run_coro(io, a.send("next")));
    auto next = test::run_coro(io, b.receive(1s));
    REQUIRE(next);
    CHECK(next->bytes == "next");
  }

  TEST_CASE("more than kMaxFds fds is Parse (control truncated) and no fd leaks") {
    asio::io_context io;
    auto [a, b] = make_pair(io);
    std::vector<net::UniqueFd> files;
    std::vector<int> raw;
    for (std::size_t i = 0; i < kMaxFds + 3; ++i) {
      files.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      REQUIRE(files.back().valid());
      raw.push_back(files.back().get());
    }
    const int before = test::open_fd_count();
    raw_send(a.native_handle(), "x", raw);
    auto got = test::run_coro(io, b.receive(1s));
    REQUIRE_FALSE(got);
    CHECK(got.error().kind == ErrorKind::Parse);
    CHECK(test::open_fd_count() == before);
  }

  TEST_CASE("EOF is Closed, after the data sent before it") {
    asio::io_context io;
    auto [a, b] = make_pair(io);
    REQUIRE(test::run_coro(io, a.send("data")));
    a.close();
    auto data = test::run_coro(io, b.receive(1s));
    REQUIRE(data);
    CHECK(data->bytes == "data");
    auto eof = test::run_coro(io, b.receive(1s));
    REQUIRE_FALSE(eof);
    CHECK(eof.error().kind == ErrorKind::Closed);
    auto eof_untimed = test::run_coro(io, b.receive());
    REQUIRE_FALSE(eof_untimed);
    CHECK(eof_untimed.error().kind == ErrorKind::Closed);
  }

  TEST_CASE("send to a closed peer is Closed (no SIGPIPE)") {
    asio::io_context io;
    auto [a, b] = make_pair(io);
    b.close();
    auto r = test::run_coro(io, a.send("x"));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Closed);
  }

  TEST_CASE("receive(timeout) with nothing sent is Timeout; the socket stays usable") {
    asio::io_context io;
    auto [a, b] = make_pair(io);
    const auto start = std::chrono::steady_clock::now();
    auto r = test::run_coro(io, b.receive(30ms));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::Timeout);
    CHECK(std::chrono::steady_clock::now() - start >= 30ms);
    REQUIRE(test::run_coro(io, a.send("late")));
    auto late = test::run_coro(io, b.receive(1s));
    REQUIRE(late);
    CHECK(late->bytes == "late");
  }

  TEST_CASE("listen/connect: accept, exchange both ways with an fd; connect errors name the cause") {
    asio::io_context io;
    test::ScratchDir dir;
    const std::string path = dir.file("zds.sock");
    auto missing = SeqPacketSocket::connect(io.get_executor(), path);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);

    auto listener = SeqPacketListener::listen(io.get_executor(), path);
    REQUIRE(listener);
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);

    auto client = SeqPacketSocket::connect(io.get_executor(), path);
    REQUIRE(client);
    auto server = test::run_coro(io, listener->accept());
    REQUIRE(server);
    auto file = test::open_scratch_file(dir.file("netns-b"));
    REQUIRE(test::run_coro(io, client->send("to server", std::vector<int>{file.get()})));
    auto at_server = test::run_coro(io, server->receive(1s));
    REQUIRE(at_server);
    CHECK(at_server->bytes == "to server");
    REQUIRE(at_server->fds.size() == 1);
    CHECK(test::file_identity(at_server->fds[0].get()) == test::file_identity(file.get()));
    REQUIRE(test::run_coro(io, server->send("to client")));
    auto at_client = test::run_coro(io, client->receive(1s));
    REQUIRE(at_client);
    CHECK(at_client->bytes == "to client");

    listener->close();
    auto refused = SeqPacketSocket::connect(io.get_executor(), path);  // the file stays, nobody listens
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::ConnectRefused);
  }

  TEST_CASE("listen refuses a path that holds a regular file, and leaves the file alone") {
    asio::io_context io;
    test::ScratchDir dir;
    const std::string path = dir.file("not-a-socket");
    { auto f = test::open_scratch_file(path); }
    auto r = SeqPacketListener::listen(io.get_executor(), path);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == ErrorKind::InvalidArgument);
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
  }

  TEST_CASE("listen replaces a stale socket file") {
    asio::io_context io;
    test::ScratchDir dir;
    const std::string path = dir.file("stale.sock");
    make_stale_socket_file(path);
    auto before = SeqPacketSocket::connect(io.get_executor(), path);
    REQUIRE_FALSE(before);
    CHECK(before.error().kind == ErrorKind::ConnectRefused);
    auto listener = SeqPacketListener::listen(io.get_executor(), path);
    REQUIRE(listener);
    auto client = SeqPacketSocket::connect(io.get_executor(), path);
    REQUIRE(client);
    auto server = test::run_coro(io, listener->accept());
    REQUIRE(server);
  }

  TEST_CASE("a path longer than sun_path is InvalidArgument") {
    asio::io_context io;
    const std::string path = "/tmp/" + std::string(200, 'p');
    auto l = SeqPacketListener::listen(io.get_executor(), path);
    REQUIRE_FALSE(l);
    CHECK(l.error().kind == ErrorKind::InvalidArgument);
    auto c = SeqPacketSocket::connect(io.get_executor(), path);
    REQUIRE_FALSE(c);
    CHECK(c.error().kind == ErrorKind::InvalidArgument);
  }
}
