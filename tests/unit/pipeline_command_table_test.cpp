#include <doctest/doctest.h>

#include "pipeline/command_table.h"
#include "pipeline/login_reply.h"

using namespace ftpsgate::pipeline;

TEST_CASE("command table: TLS and session commands work before login and never reach the filters") {
  for (const char* verb : {"AUTH", "PBSZ", "FEAT", "HOST", "QUIT"}) {
    const CommandRoute route = route_command(verb);
    CHECK(route.gate == Gate::kAny);
    CHECK_FALSE(route.filtered);
  }
}

TEST_CASE("command table: USER, PASS, ACCT, PROT, CCC and NOOP pass the filters at any phase") {
  for (const char* verb : {"USER", "PASS", "ACCT", "PROT", "CCC", "NOOP"}) {
    const CommandRoute route = route_command(verb);
    CHECK(route.gate == Gate::kAny);
    CHECK(route.filtered);
  }
  CHECK(route_command("ACCT").handler == CommandHandler::kPass);
}

TEST_CASE("command table: data commands need a login and pass the filters") {
  CHECK(route_command("PASV").handler == CommandHandler::kPasv);
  CHECK(route_command("EPRT").handler == CommandHandler::kEprt);
  for (const char* verb : {"RETR", "LIST", "NLST", "MLSD"}) {
    CHECK(route_command(verb).handler == CommandHandler::kDownload);
    CHECK(route_command(verb).gate == Gate::kLoggedIn);
    CHECK(route_command(verb).filtered);
  }
  for (const char* verb : {"STOR", "APPE", "STOU"}) CHECK(route_command(verb).handler == CommandHandler::kUpload);
}

TEST_CASE("command table: LPRT and LPSV are answered 502 locally, unfiltered") {
  CHECK(route_command("LPRT").handler == CommandHandler::kObsoleteData);
  CHECK_FALSE(route_command("LPSV").filtered);
}

TEST_CASE("command table: unknown verbs are relayed after login, through the filters") {
  for (const char* verb : {"CWD", "SIZE", "DELE", "SITE", "ABOR", "XYZZY"}) {
    const CommandRoute route = route_command(verb);
    CHECK(route.handler == CommandHandler::kRelay);
    CHECK(route.gate == Gate::kLoggedIn);
    CHECK(route.filtered);
  }
  // Verbs are matched exactly (the parser upper-cases them).
  CHECK(route_command("user").handler == CommandHandler::kRelay);
}

TEST_CASE("login replies: 230 to USER, PASS or ACCT during the login logs the session in") {
  for (const char* verb : {"USER", "PASS", "ACCT"}) {
    CHECK(login_outcome(verb, LoginPhase::kLogin, 230) == LoginOutcome::kLoggedIn);
  }
}

TEST_CASE("login replies: 530 to PASS or ACCT is a failed login the throttle counts; 530 to USER is not") {
  CHECK(login_outcome("PASS", LoginPhase::kLogin, 530) == LoginOutcome::kFailed);
  CHECK(login_outcome("ACCT", LoginPhase::kLogin, 530) == LoginOutcome::kFailed);
  CHECK(login_outcome("USER", LoginPhase::kLogin, 530) == LoginOutcome::kNone);
}

TEST_CASE("login replies: 331 and 332 keep the login going; other commands' replies change nothing") {
  CHECK(login_outcome("USER", LoginPhase::kLogin, 331) == LoginOutcome::kNone);
  CHECK(login_outcome("PASS", LoginPhase::kLogin, 332) == LoginOutcome::kNone);
  CHECK(login_outcome("CWD", LoginPhase::kLogin, 230) == LoginOutcome::kNone);
  CHECK(login_outcome("NOOP", LoginPhase::kLoggedIn, 530) == LoginOutcome::kNone);
}

TEST_CASE("login replies: nothing counts outside the login phase") {
  CHECK(login_outcome("PASS", LoginPhase::kLoggedIn, 230) == LoginOutcome::kNone);
  CHECK(login_outcome("PASS", LoginPhase::kAwaitUser, 530) == LoginOutcome::kNone);
}
