#include "common/hbone/pool.h"

#include <algorithm>
#include <cassert>
#include <exception>
#include <list>
#include <optional>
#include <unordered_map>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace ambient::hbone {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Lifecycle of one pooled connection (H8). The only transitions are:
//
//   Connecting ──connector ok──> Ready ──GOAWAY either way / idle release / shutdown──> Draining
//        │                         │                                                      │
//        │ connector failed        │ session died                         session ended │
//        └────────────────────────>┴──────────────────────> Closed <─────────────────────┘
enum class ConnState : std::uint8_t {
  Connecting,  // the key's single connect in flight; requesters for the key wait for it
  Ready,       // in the pool: hands out streams while active < limit (just one until settled)
  Draining,    // GOAWAY sent or received: out of the pool; open streams finish, then the session closes
  Closed,      // the connect failed (`error` says why) or the session ended; the pool has let go of it
};

const char* to_string(ConnState s) {
  switch (s) {
    case ConnState::Connecting: return "connecting";
    case ConnState::Ready: return "ready";
    case ConnState::Draining: return "draining";
    case ConnState::Closed: return "closed";
  }
  return "?";
}

bool legal(ConnState from, ConnState to) {
  switch (from) {
    case ConnState::Connecting: return to == ConnState::Ready || to == ConnState::Closed;
    case ConnState::Ready: return to == ConnState::Draining || to == ConnState::Closed;
    case ConnState::Draining: return to == ConnState::Closed;
    case ConnState::Closed: return false;
  }
  return false;
}

// Coroutines waiting for something to change on one key: its connect finished, a new connection's first
// CONNECT was answered, or the pool shut down. Each waiter owns a timer set to its own deadline, and
// wake_all() cancels all of them. There is no "set" flag: a woken waiter scans the key again. A waiter
// scans and registers with no suspension in between, so it cannot miss a wake-up.
class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;

  // True when woken; false when the deadline passed first or the wait was cancelled from outside.
  asio::awaitable<bool> wait_until(Clock::time_point deadline) {
    Waiter w(*this, co_await asio::this_coro::executor, deadline);
    co_await w.timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return w.woken;
  }

  void wake_all() noexcept {
    for (Waiter* w : waiters_) {
      w->woken = true;
      w->timer.cancel();
    }
    waiters_.clear();
  }

  bool empty() const noexcept { return waiters_.empty(); }

 private:
  // Registered for its lifetime unless woken (wake_all unlinks), so a frame destroyed mid-wait never
  // leaves a dangling pointer behind.
  struct Waiter {
    Waiter(WaitList& l, const asio::any_io_executor& ex, Clock::time_point deadline)
        : list(l), timer(ex, deadline), it(l.waiters_.insert(l.waiters_.end(), this)) {}
    ~Waiter() {
      if (!woken) list.waiters_.erase(it);
    }
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;

    WaitList& list;
    asio::steady_timer timer;
    std::list<Waiter*>::iterator it;
    bool woken = false;
  };
  std::list<Waiter*> waiters_;
};

struct PooledConn {
  explicit PooledConn(std::uint64_t i) : id(i) {}

  std::uint64_t id;                         // "#id" in logs
  ConnState state = ConnState::Connecting;  // change only through set_state()
  std::shared_ptr<h2::Session> session;     // set when Ready
  std::optional<Error> error;               // why the connect failed: every waiter on it returns this
  bool settled = false;                     // first CONNECT answered: the peer's SETTINGS are applied
  bool probing = false;                     // that first CONNECT is in flight
  std::uint64_t streams = 0;                // streams ever opened here (stats: reuse)
  std::optional<Clock::time_point> idle_since;  // first sweep that saw no active streams; reset on use
};
using ConnPtr = std::shared_ptr<PooledConn>;

struct KeyEntry {
  std::vector<ConnPtr> conns;  // Ready connections plus at most one Connecting (the single flight)
  WaitList waiters;
};
using EntryPtr = std::shared_ptr<KeyEntry>;

void set_state(PooledConn& c, ConnState next) {
  if (!legal(c.state, next)) {
    spdlog::error("hbone pool: connection #{}: illegal state change {} -> {}", c.id, to_string(c.state),
                  to_string(next));
    assert(false && "illegal pool connection state change");
    return;
  }
  spdlog::trace("hbone pool: connection #{} {} -> {}", c.id, to_string(c.state), to_string(next));
  c.state = next;
}

// Destination SANs sorted and de-duplicated, so equal SAN sets make equal keys.
void normalize(PoolKey& key) {
  auto& sans = key.destination_sans;
  if (std::is_sorted(sans.begin(), sans.end()) && std::adjacent_find(sans.begin(), sans.end()) == sans.end()) return;
  std::sort(sans.begin(), sans.end());
  sans.erase(std::unique(sans.begin(), sans.end()), sans.end());
}

std::string describe(const PoolKey& key) {
  return fmt::format("{} -> {}:{}", key.source_identity, key.destination.address().to_string(),
                     key.destination.port());
}

}  // namespace

std::size_t PoolKeyHash::operator()(const PoolKey& k) const noexcept {
  std::size_t h = std::hash<std::string>{}(k.source_identity);
  auto mix = [&h](std::size_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
  for (const auto& san : k.destination_sans) mix(std::hash<std::string>{}(san));
  mix(std::hash<asio::ip::tcp::endpoint>{}(k.destination));
  mix(std::hash<asio::ip::address>{}(k.source_ip));
  return h;
}

struct Pool::State : std::enable_shared_from_this<Pool::State> {
  State(asio::any_io_executor e, Connector c, PoolOptions o)
      : ex(std::move(e)), connector(std::move(c)), options(o), sweep_timer(ex) {
    options.max_streams_per_connection = std::max<std::uint32_t>(options.max_streams_per_connection, 1);
    sweep_tick = std::clamp<milliseconds>(options.unused_release_timeout / 4, milliseconds(10), milliseconds(5'000));
  }

  asio::any_io_executor ex;
  Connector connector;
  PoolOptions options;
  milliseconds sweep_tick{};
  std::unordered_map<PoolKey, EntryPtr, PoolKeyHash> keys;  // an entry exists while it has conns or waiters
  std::vector<ConnPtr> draining;                             // Draining: watched until the session ends
  asio::steady_timer sweep_timer;
  bool sweeping = false;  // sweep_loop is running (only while there is something to watch)
  bool shut = false;      // shutdown() was called
  std::uint64_t next_id = 1;
  PoolStats counters;     // the counter half of PoolStats; gauges are computed in stats()

  EntryPtr entry(const PoolKey& key) {
    auto& e = keys[key];
    if (!e) e = std::make_shared<KeyEntry>();
    return e;
  }

  void gc(const PoolKey& key) {
    auto it = keys.find(key);
    if (it != keys.end() && it->second->conns.empty() && it->second->waiters.empty()) keys.erase(it);
  }

  static bool in_service(const PooledConn& c) {
    return c.state == ConnState::Ready && c.session->alive() && !c.session->draining() &&
           std::chrono::system_clock::now() < c.session->credentials_expiry();
  }

  // Below every limit: ours, the session's own h2 setting and the peer's MAX_CONCURRENT_STREAMS.
  bool has_capacity(const PooledConn& c) const {
    return c.session->can_open_stream() && c.session->active_streams() < options.max_streams_per_connection;
  }

  // Ready -> Draining (watched until the session ends) or Closed (already dead).
  void retire(ConnPtr c) {
    if (!c->session->alive()) {
      set_state(*c, ConnState::Closed);
      return;
    }
    set_state(*c, ConnState::Draining);
    draining.push_back(std::move(c));
    ensure_sweep();
  }

  // Drops dead and draining connections from a key (a peer's GOAWAY or EOF is seen here).
  void prune(KeyEntry& e) {
    std::erase_if(e.conns, [this](const ConnPtr& c) {
      if (c->state != ConnState::Ready || in_service(*c)) return false;
      if (c->session->alive() && !c->session->draining()) {
        // Its certificates (ours or the peer's) expired: open streams finish, new ones get a fresh handshake.
        spdlog::debug("hbone pool: connection #{} to {}: credentials expired, draining", c->id, c->session->peer());
        c->session->shutdown();
      } else {
        spdlog::debug("hbone pool: connection #{} to {} {}, dropped from the pool", c->id, c->session->peer(),
                      c->session->alive() ? "received GOAWAY" : "closed");
      }
      retire(c);
      return true;
    });
  }

  // Starts the key's single flight: a Connecting connection whose connector runs as its own task, so no
  // requester's deadline or cancellation can abandon it halfway.
  ConnPtr start_connect(const PoolKey& key, const EntryPtr& e) {
    auto c = std::make_shared<PooledConn>(next_id++);
    e->conns.push_back(c);
    ++counters.connects_attempted;
    spdlog::debug("hbone pool: connection #{} for {}: connecting", c->id, describe(key));
    asio::co_spawn(ex, run_connect(shared_from_this(), e, c, key), asio::detached);
    return c;
  }

  static asio::awaitable<void> run_connect(std::shared_ptr<State> st, EntryPtr e, ConnPtr c, PoolKey key) {
    std::optional<Result<std::shared_ptr<h2::Session>>> r;
    try {
      r.emplace(co_await st->connector(key));
    } catch (const std::exception& ex) {  // the connector is caller code: keep the waiters' contract anyway
      r.emplace(errorf(ErrorKind::Internal, "HBONE connector for {} threw: {}", describe(key), ex.what()));
    }
    if (r->has_value() && !r->value())
      r.emplace(errorf(ErrorKind::Internal, "HBONE connector for {} returned no session", describe(key)));
    if (!r->has_value()) {
      ++st->counters.connects_failed;
      spdlog::debug("hbone pool: connection #{} for {} failed: {}", c->id, describe(key), r->error());
      c->error = std::move(*r).error();
      set_state(*c, ConnState::Closed);
      std::erase(e->conns, c);
    } else {
      c->session = std::move(*r).value();
      set_state(*c, ConnState::Ready);
      if (st->shut) {  // shut down while connecting: drain at once, nobody gets a stream
        std::erase(e->conns, c);
        c->session->shutdown();
        st->retire(c);
      } else {
        st->ensure_sweep();
      }
    }
    e->waiters.wake_all();
    st->gc(key);
  }

  void ensure_sweep() {
    if (sweeping) return;
    sweeping = true;
    asio::co_spawn(ex, sweep_loop(shared_from_this()), asio::detached);
  }

  // One timer per pool, running only while there are connections to watch. A per-connection deadline
  // would not help: the h2 session does not tell us when its last stream ends, so idleness has to be
  // sampled anyway, and one timer that ticks every few seconds is cheaper than one timer per connection.
  static asio::awaitable<void> sweep_loop(std::shared_ptr<State> st) {
    while (!st->keys.empty() || !st->draining.empty()) {
      st->sweep_timer.expires_after(st->sweep_tick);
      co_await st->sweep_timer.async_wait(asio::as_tuple(asio::use_awaitable));
      st->sweep(Clock::now());
    }
    st->sweeping = false;
  }

  void sweep(Clock::time_point now) {
    for (auto it = keys.begin(); it != keys.end();) {
      KeyEntry& e = *it->second;
      prune(e);
      std::erase_if(e.conns, [&](const ConnPtr& c) {
        if (c->state != ConnState::Ready) return false;
        if (c->session->active_streams() > 0 || c->probing) {
          c->idle_since.reset();
          return false;
        }
        if (!c->idle_since) {  // the last stream ended at some point since the previous sweep
          c->idle_since = now;
          return false;
        }
        if (now - *c->idle_since < options.unused_release_timeout) return false;
        spdlog::debug("hbone pool: connection #{} to {} unused for {} ms, closing", c->id, c->session->peer(),
                      options.unused_release_timeout.count());
        ++counters.idle_released;
        c->session->shutdown();
        retire(c);
        return true;
      });
      if (e.conns.empty() && e.waiters.empty())
        it = keys.erase(it);
      else
        ++it;
    }
    std::erase_if(draining, [](const ConnPtr& c) {
      if (c->session->alive()) return false;
      set_state(*c, ConnState::Closed);
      return true;
    });
  }

  void shutdown() {
    if (shut) return;
    shut = true;
    for (auto& [key, e] : keys) {
      std::erase_if(e->conns, [this](const ConnPtr& c) {
        if (c->state != ConnState::Ready) return false;  // Connecting: drained when its connect finishes
        c->session->shutdown();
        retire(c);
        return true;
      });
      e->waiters.wake_all();  // they return Cancelled
    }
    std::erase_if(keys, [](const auto& kv) { return kv.second->conns.empty(); });
  }

  std::size_t count(const KeyEntry& e) const {
    return static_cast<std::size_t>(
        std::count_if(e.conns.begin(), e.conns.end(), [](const ConnPtr& c) { return in_service(*c); }));
  }
};

namespace {

// The body of Pool::connect. A free coroutine taking everything by value (H2): it stays valid even if the
// Pool object goes away while it is suspended.
asio::awaitable<Result<std::shared_ptr<h2::Stream>>> pool_connect(std::shared_ptr<Pool::State> st, PoolKey key,
                                                                   std::string authority, h2::Headers extra,
                                                                   milliseconds timeout) {
  normalize(key);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (st->shut) co_return errorf(ErrorKind::Cancelled, "HBONE pool is shut down: no new tunnel to {}", authority);
    EntryPtr e = st->entry(key);
    st->prune(*e);

    // Choice, in order: a settled connection with room (the oldest, so the others can idle out); a new
    // connection nobody has probed yet; otherwise wait for the probe or the connect in flight; otherwise
    // become the key's single flight.
    ConnPtr use, flight;
    bool probe_pending = false;
    for (const auto& c : e->conns) {
      if (c->state == ConnState::Connecting) {
        flight = c;
      } else if (c->settled) {
        if (st->has_capacity(*c)) {
          use = c;
          break;
        }
      } else if (c->probing) {
        probe_pending = true;
      } else if (!use && st->has_capacity(*c)) {
        use = c;  // keep looking for a settled one
      }
    }

    if (use) {
      const bool probe = !use->settled;
      if (probe) use->probing = true;
      ++st->counters.streams_opened;
      if (use->streams++ > 0) ++st->counters.streams_reused;
      use->idle_since.reset();
      const auto left = std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
      auto session = use->session;
      // Session::connect submits the stream before its first suspension: the slot is taken right here.
      auto r = co_await session->connect(authority, extra, left);
      if (probe) {  // answered or failed: either way the peer's SETTINGS have had their chance
        use->probing = false;
        use->settled = true;
        e->waiters.wake_all();
      }
      co_return r;
    }

    if (!flight && !probe_pending) flight = st->start_connect(key, e);
    const bool woken = co_await e->waiters.wait_until(deadline);
    if (flight && flight->error) co_return *flight->error;  // ztunnel: every waiter gets the connect error
    if (!woken && !st->shut)
      co_return errorf(ErrorKind::Timeout, "no HBONE connection for {} within {} ms", describe(key), timeout.count());
  }
}

}  // namespace

Pool::Pool(asio::any_io_executor executor, Connector connector, PoolOptions options)
    : state_(std::make_shared<State>(std::move(executor), std::move(connector), options)) {}

Pool::~Pool() { state_->shutdown(); }

asio::awaitable<Result<std::shared_ptr<h2::Stream>>> Pool::connect(const PoolKey& key, const std::string& authority,
                                                                   const h2::Headers& extra, milliseconds timeout) {
  return pool_connect(state_, key, authority, extra, timeout);
}

std::size_t Pool::connection_count() const {
  std::size_t n = 0;
  for (const auto& [key, e] : state_->keys) n += state_->count(*e);
  return n;
}

std::size_t Pool::connection_count(const PoolKey& key) const {
  PoolKey k = key;
  normalize(k);
  auto it = state_->keys.find(k);
  return it == state_->keys.end() ? 0 : state_->count(*it->second);
}

PoolStats Pool::stats() const {
  PoolStats s = state_->counters;
  s.connections = connection_count();
  s.draining = static_cast<std::size_t>(std::count_if(state_->draining.begin(), state_->draining.end(),
                                                      [](const ConnPtr& c) { return c->session->alive(); }));
  return s;
}

void Pool::shutdown() { state_->shutdown(); }

}  // namespace ambient::hbone
