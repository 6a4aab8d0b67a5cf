// What a scanner said about one file (issue 16, pure).
#pragma once

#include <string>
#include <string_view>

namespace ftpsgate::inspection {

enum class Verdict { kClean, kInfected, kError };

std::string_view verdict_name(Verdict verdict);  // "clean", "infected", "error"

struct ScanResult {
  Verdict verdict = Verdict::kError;
  std::string signature;  // kInfected: the scanner's name for what it found
  std::string error;      // kError: what went wrong, for logs

  static ScanResult clean() { return {Verdict::kClean, {}, {}}; }
  static ScanResult infected(std::string signature) { return {Verdict::kInfected, std::move(signature), {}}; }
  static ScanResult failed(std::string error) { return {Verdict::kError, {}, std::move(error)}; }
};

}  // namespace ftpsgate::inspection
