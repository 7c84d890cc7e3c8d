#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "cni/kube/api_server_config.h"
#include "test/support/temp_dir.h"

using namespace ambient;
using namespace ambient::cni::kube;
using ambient::test::TempDir;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST_SUITE("cni/kube/api_server_config") {
  TEST_CASE("parse_api_server_url") {
    struct Row {
      const char* url;
      const char* host;  // nullptr: refused
      std::uint16_t port;
      const char* error;
    };
    const std::vector<Row> rows = {
        {"https://10.96.0.1", "10.96.0.1", 443, ""},
        {"https://10.96.0.1:6443", "10.96.0.1", 6443, ""},
        {"https://10.96.0.1:6443/", "10.96.0.1", 6443, ""},
        {"https://kubernetes.default.svc", "kubernetes.default.svc", 443, ""},
        {"https://[fd00::1]:6443", "fd00::1", 6443, ""},
        {"https://[fd00::1]", "fd00::1", 443, ""},
        {"http://10.96.0.1", nullptr, 0, "must start with https://"},
        {"10.96.0.1:443", nullptr, 0, "must start with https://"},
        {"https://", nullptr, 0, "empty host"},
        {"https://h:0", nullptr, 0, "port '0' is not 1..65535"},
        {"https://h:65536", nullptr, 0, "port '65536' is not 1..65535"},
        {"https://h:", nullptr, 0, "empty port"},
        {"https://h:x1", nullptr, 0, "port 'x1'"},
        {"https://h/api", nullptr, 0, "no path, query or user"},
        {"https://user@h", nullptr, 0, "no path, query or user"},
        {"https://[fd00::1", nullptr, 0, "'[' without ']'"},
        {"https://[host]:1", nullptr, 0, "not an IPv6 address"},
        {"https://h h", nullptr, 0, "holds the character ' '"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.url);
      auto parsed = parse_api_server_url(row.url);
      if (row.host == nullptr) {
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().kind == ErrorKind::InvalidArgument);
        CHECK_MESSAGE(parsed.error().context.find(row.error) != std::string::npos, parsed.error().context);
      } else {
        REQUIRE_MESSAGE(parsed, (parsed ? std::string() : parsed.error().message()));
        CHECK(parsed->host == row.host);
        CHECK(parsed->port == row.port);
      }
    }
  }

  TEST_CASE("authority and verified name") {
    ApiServerConfig c;
    c.host = "fd00::1";
    c.port = 6443;
    CHECK(c.authority() == "[fd00::1]:6443");
    CHECK(c.verified_name() == "fd00::1");
    c.server_name = "kubernetes.default.svc";
    CHECK(c.verified_name() == "kubernetes.default.svc");
    c.host = "10.0.0.1";
    CHECK(c.authority() == "10.0.0.1:6443");
  }

  TEST_CASE("in_cluster_config: variables, files, override") {
    TempDir dir("kube-config");
    const std::string token = dir.write("token", "tok\n");
    const std::string ca = dir.write("ca.crt", "PEM");

    SUBCASE("from KUBERNETES_SERVICE_HOST/PORT") {
      auto c = in_cluster_config("", token, ca, env_of({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                                        {"KUBERNETES_SERVICE_PORT", "443"}}));
      REQUIRE_MESSAGE(c, (c ? std::string() : c.error().message()));
      CHECK(c->host == "10.96.0.1");
      CHECK(c->port == 443);
      CHECK(c->token_file == token);
      CHECK(c->ca_file == ca);
      CHECK(c->server_name.empty());
    }
    SUBCASE("an IPv6 service host") {
      auto c = in_cluster_config("", token, ca, env_of({{"KUBERNETES_SERVICE_HOST", "fd00:10:96::1"},
                                                        {"KUBERNETES_SERVICE_PORT", "443"}}));
      REQUIRE(c);
      CHECK(c->authority() == "[fd00:10:96::1]:443");
    }
    SUBCASE("the URL override wins") {
      auto c = in_cluster_config("https://127.0.0.1:6443", token, ca, env_of({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                                                              {"KUBERNETES_SERVICE_PORT", "443"}}));
      REQUIRE(c);
      CHECK(c->host == "127.0.0.1");
      CHECK(c->port == 6443);
    }
    SUBCASE("default files are the service account's") {
      auto c = in_cluster_config("https://127.0.0.1", "", "", env_of({}));
      // Not in a pod here (unless these exist): the error names the CA file.
      if (!c) {
        CHECK(c.error().context.find(std::string(kServiceAccountCaFile)) != std::string::npos);
      } else {
        CHECK(c->ca_file == kServiceAccountCaFile);
        CHECK(c->token_file == kServiceAccountTokenFile);
      }
    }
    SUBCASE("errors name the missing variable or file") {
      struct Row {
        const char* name;
        std::map<std::string, std::string> env;
        std::string token_file;
        std::string ca_file;
        const char* error;
      };
      const std::vector<Row> rows = {
          {"no host", {}, token, ca, "KUBERNETES_SERVICE_HOST is not set"},
          {"no port", {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}}, token, ca, "KUBERNETES_SERVICE_PORT is not set"},
          {"bad port", {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "https"}}, token, ca,
           "KUBERNETES_SERVICE_PORT: port 'https'"},
          {"no CA file", {{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}}, token,
           dir.file("absent.crt"), "API server CA file"},
          {"no token file", {{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}},
           dir.file("absent-token"), ca, "service account token file"},
      };
      for (const auto& row : rows) {
        CAPTURE(row.name);
        auto c = in_cluster_config("", row.token_file, row.ca_file, env_of(row.env));
        REQUIRE_FALSE(c);
        CHECK(c.error().kind == ErrorKind::InvalidArgument);
        CHECK_MESSAGE(c.error().context.find(row.error) != std::string::npos, c.error().context);
      }
    }
  }

  TEST_CASE("read_token_file trims and refuses what a header cannot carry") {
    TempDir dir("kube-token");
    auto good = read_token_file(dir.write("good", "  eyJhbGciOi.abc-def_ghi\n"));
    REQUIRE(good);
    CHECK(*good == "eyJhbGciOi.abc-def_ghi");

    struct Row {
      const char* name;
      std::string content;
      const char* error;
    };
    const std::vector<Row> rows = {
        {"empty", "", "empty"},
        {"whitespace", " \n\t", "empty"},
        {"inner space", "a b", "0x20"},
        {"CR LF inside", "a\r\nX-Evil: 1", "0x0d"},
        {"too large", std::string(kMaxTokenBytes + 1, 'a'), "larger than"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      auto r = read_token_file(dir.write(row.name, row.content));
      REQUIRE_FALSE(r);
      CHECK(r.error().kind == ErrorKind::InvalidArgument);
      CHECK_MESSAGE(r.error().context.find(row.error) != std::string::npos, r.error().context);
    }
    auto missing = read_token_file(dir.file("nope"));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::NotFound);
    CHECK(missing.error().context.find(dir.file("nope")) != std::string::npos);
  }
}
