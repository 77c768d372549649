// specoffload: command-line entry point.
#include <CLI/CLI.hpp>
#include <cstring>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"specoffload: high-throughput LLM inference with speculative decoding and weight offloading"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "specoffload 0.1.0");
  std::vector<so::cli::Command> commands;
  for (auto register_command : {so::cli::register_generate, so::cli::register_tokenize, so::cli::register_logits,
                                 so::cli::register_profile, so::cli::register_plan, so::cli::register_run,
                                 so::cli::register_serve}) {
    commands.push_back(register_command(app));
  }
  // note: CLI11 short names are one character; llama.cpp's multi-letter short flags that
  // users type from habit are spelled out here.
  std::vector<char*> args(argv, argv + argc);
  for (char*& arg : args) {
    if (std::strcmp(arg, "-md") == 0) arg = const_cast<char*>("--draft-model");
  }
  CLI11_PARSE(app, static_cast<int>(args.size()), args.data());
  for (auto& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return 1;
}
