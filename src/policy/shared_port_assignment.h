// Which pending transfer a data connection on a shared passive port belongs to (issue 6),
// and which shared port a PASV/EPSV may name. Pure bookkeeping: no sockets, no locks.
//
// A protected transfer is found by its control session's binding token, carried in the
// resumed TLS session, so any number of them may wait on one port, even from one address.
// A clear transfer can only be found by the client's address, so a clear reservation is
// exclusive: while it waits on port P for address A, no other transfer from A (clear or
// protected, whose ClientHello would otherwise be taken for clear data) is given P.
// A request that fits no port waits, first come first served per address, until a
// reservation of that address is claimed or released.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ftpsgate::policy {

class SharedPortAssignment {
 public:
  enum class Protection { kClear, kProtected };

  struct Request {
    uint64_t id = 0;        // unique per reservation, chosen by the caller
    std::string address;    // the client's IP (after PROXY protocol)
    Protection protection = Protection::kProtected;
    std::string token;      // binding token of the control session (protected only)
  };

  struct Grant {
    uint64_t id = 0;
    uint16_t port = 0;
  };

  explicit SharedPortAssignment(std::vector<uint16_t> ports);

  // The port for the request, or nullopt when it was queued (it comes back from a later
  // release or claim as a Grant).
  std::optional<uint16_t> reserve(const Request& request);
  // Gives up a reservation or a queued request (unknown ids are ignored).
  std::vector<Grant> release(uint64_t id);
  // A clear connection from `address` arrived on `port`: the reservation it belongs to,
  // which is consumed. Grants are appended for requests this unblocked.
  std::optional<uint64_t> claim_clear(const std::string& address, uint16_t port, std::vector<Grant>& granted);
  // A protected connection resumed a session carrying `token`.
  std::optional<uint64_t> claim_protected(const std::string& token, std::vector<Grant>& granted);
  // Whether a clear reservation waits on (address, port): a connection from there is clear.
  bool clear_pending(const std::string& address, uint16_t port) const;

  std::size_t reservations() const { return placed_.size(); }
  std::size_t queued() const { return queued_count_; }

 private:
  struct Placed {
    Request request;
    uint16_t port = 0;
  };
  struct PortUse {
    unsigned protected_count = 0;
    std::optional<uint64_t> clear;
  };
  struct AddressState {
    std::map<uint16_t, PortUse> ports;
    std::deque<Request> waiting;
  };

  std::optional<uint16_t> place(const Request& request);
  void unplace(uint64_t id);
  void admit_waiting(const std::string& address, std::vector<Grant>& granted);

  std::vector<uint16_t> ports_;
  std::size_t next_ = 0;  // round robin start for protected requests
  std::map<uint64_t, Placed> placed_;
  std::map<std::string, uint64_t> by_token_;
  std::map<std::string, AddressState> addresses_;
  std::size_t queued_count_ = 0;
};

}  // namespace ftpsgate::policy
