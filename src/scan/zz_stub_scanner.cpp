// TEMPORARY local stub, never committed.
#include <cstring>
#include "net/timer.h"
#include "scan/scanner.h"
namespace ftpsgate::inspection {
namespace {
struct StubHandle : ScanHandle {
  std::unique_ptr<net::Timer> t;
};
struct Stub : Scanner {
  ScannerConfig c; event_base* b;
  Stub(event_base* base, ScannerConfig cfg) : c(std::move(cfg)), b(base) {}
  std::unique_ptr<ScanHandle> scan(const ScanSubject& s, Done done) override {
    auto h = std::make_unique<StubHandle>();
    char buf[8] = {};
    s.content->read_at(0, buf, 3);
    bool bad = std::memcmp(buf, "X5O", 3) == 0;
    h->t = std::make_unique<net::Timer>(b, [done, bad] { done(bad ? ScanResult::infected("Stub-Sig") : ScanResult::clean()); });
    h->t->arm(std::chrono::milliseconds(10));
    return h;
  }
  std::unique_ptr<ScanHandle> probe(ProbeDone done) override {
    auto h = std::make_unique<StubHandle>();
    h->t = std::make_unique<net::Timer>(b, [done] { done(true, ""); });
    h->t->arm(std::chrono::milliseconds(10));
    return h;
  }
  std::string_view engine() const override { return "clamd"; }
  const ScannerConfig& config() const override { return c; }
};
}
std::unique_ptr<Scanner> make_scanner(event_base* base, const ScannerConfig& config) { return std::make_unique<Stub>(base, config); }
}
