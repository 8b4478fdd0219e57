// A fresh directory under the system temp dir for one test, removed with everything in it.
#pragma once

#include <filesystem>
#include <random>
#include <string>

namespace telegate::testing {

struct ScratchDir {
  explicit ScratchDir(const std::string& prefix = "telegate-test-")
      : path(std::filesystem::temp_directory_path() / (prefix + std::to_string(std::random_device{}()))) {}
  ~ScratchDir() { std::filesystem::remove_all(path); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::filesystem::path path;
};

}  // namespace telegate::testing
