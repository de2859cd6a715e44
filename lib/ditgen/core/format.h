// Numbers for people: log lines, progress and reports print a few significant digits, not seventeen.
#pragma once

#include <string>
#include <vector>

namespace ditgen {

// `value` to `significant` digits without an exponent for ordinary sizes: 1.41234 -> "1.41",
// 0.0012345 -> "0.00123", 1234.5 -> "1235" (whole numbers keep all their digits), nan -> "nan".
std::string format_number(double value, int significant = 3);

// A duration: "0.523 s", "12.3 s", "2 min 05 s", "1 h 02 min".
std::string format_seconds(double seconds);

// A list of numbers, each as format_number: "[1.41, 1.41, 0.352]".
std::string format_numbers(const std::vector<double>& values, int significant = 3);

}  // namespace ditgen
