// Subcommands: each registers its options and returns the function that runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace so::cli {

struct Command {
  CLI::App* app;             // the subcommand, with its options
  std::function<int()> run;  // reads the parsed options; returns the exit code
};

Command register_generate(CLI::App& app);
Command register_tokenize(CLI::App& app);
Command register_logits(CLI::App& app);
Command register_profile(CLI::App& app);
Command register_plan(CLI::App& app);
Command register_run(CLI::App& app);
Command register_serve(CLI::App& app);

}  // namespace so::cli
