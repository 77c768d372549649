// specoffload serve: the OpenAI-compatible server. Requests join the running batch of the
// throughput scheduler; SIGINT or SIGTERM drains (what runs finishes, new requests get
// 503), a second one exits at once.
#include <arpa/inet.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "commands.h"
#include "openai_server.h"
#include "options.h"

namespace so::cli {
namespace {

struct ServeOptions {
  ModelOptions model;
  BatchOptions batch;
  SamplingOptions sampling;
  SpecCliOptions spec;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  std::string served_model_name;
  std::string max_body = "4M";
  int max_prompt_tokens = 0;
  int max_tokens_limit = 0;
  int default_max_tokens = 256;
  int max_queue = 4096;
  int http_threads = 512;
  std::string chat_template;
};

// Whether `host` only accepts connections from this machine.
bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr address{};
  return ::inet_pton(AF_INET, host.c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

int run_serve(const ServeOptions& options) {
  auto engine_config = engine_options(options.model, options.batch, options.spec, /*mmap_by_default=*/false);
  if (!engine_config.ok()) return report_error(engine_config.status());
  engine_config->max_pass_records = 4096;  // a server runs for days
  // A row reaches at most the longest prompt plus the most tokens a request may ask for.
  if (options.max_prompt_tokens > 0 && options.max_tokens_limit > 0) {
    engine_config->kv_positions_hint = int64_t(options.max_prompt_tokens) + options.max_tokens_limit;
  }
  auto max_body = parse_size_flag("--max-body", options.max_body, "4M");
  if (!max_body.ok()) return report_error(max_body.status());
  ServerConfig config;
  config.api_key = options.api_key;
  if (config.api_key.empty()) {
    if (const char* key = std::getenv("SPECOFFLOAD_API_KEY"); key && *key) config.api_key = key;
  }
  config.max_body_bytes = size_t(*max_body);
  config.max_prompt_tokens = options.max_prompt_tokens;
  config.max_tokens_limit = options.max_tokens_limit;
  config.default_max_tokens = options.default_max_tokens;
  config.http_threads = options.http_threads;
  auto sampling = sampling_params(options.sampling);
  if (!sampling.ok()) return report_error(sampling.status());
  config.sampling = *sampling;
  config.chat_template = options.chat_template;
  if (Status valid = config.sampling.validate(); !valid.ok()) return report_error(valid);
  config.model_name = options.served_model_name.empty()
                          ? std::filesystem::path(engine_config->model_path).stem().string()
                          : options.served_model_name;

  // note: the signals are blocked before any thread starts, so every thread inherits the
  // mask and only the waiting thread below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A client that went away must fail a write, not kill the process.
  signal(SIGPIPE, SIG_IGN);

  auto engine_or = Engine::create(*engine_config);
  if (!engine_or.ok()) return report_error(engine_or.status());
  Engine& engine = **engine_or;
  RequestQueue queue(size_t(std::max(1, options.max_queue)));
  OpenAiServer server(engine, queue, config);
  const int port = server.bind(options.host, options.port);
  if (port < 0) {
    return report_error(io_error("cannot listen on ", options.host, ":", options.port,
                                 " (in use, or not an address of this machine); pick another --port or --host"));
  }
  std::thread scheduler([&] { engine.serve(queue); });
  std::thread signal_waiter([&] {
    int received = 0;
    sigwait(&signals, &received);
    std::fprintf(stderr, "serve: signal %d, draining (a second signal exits at once)\n", received);
    server.begin_drain();
    queue.close();
    std::thread([&] {
      int again = 0;
      sigwait(&signals, &again);
      std::fprintf(stderr, "serve: second signal, exiting without draining\n");
      std::_Exit(130);
    }).detach();
    scheduler.join();
    server.stop();
  });
  if (config.api_key.empty() && !is_loopback(options.host)) {
    std::fprintf(stderr,
                 "serve: warning: listening on %s without an API key: anyone who can reach this address can use the "
                 "model; give --api-key KEY (or $SPECOFFLOAD_API_KEY), or --host 127.0.0.1\n",
                 options.host.c_str());
  }
  std::fprintf(stderr, "serve: model '%s' on http://%s:%d (backend %s%s%s)\n", config.model_name.c_str(),
               options.host.c_str(), port, engine.backend_name().c_str(),
               engine.drafter_name().empty() ? "" : ", drafter ", std::string(engine.drafter_name()).c_str());
  const bool served = server.listen();
  if (!served) {
    // note: listen() only returns early on failure; unblock the signal thread so it ends.
    kill(getpid(), SIGTERM);
  }
  signal_waiter.join();
  std::fprintf(stderr, "serve: stopped\n");
  return served ? 0 : 1;
}

}  // namespace

Command register_serve(CLI::App& app) {
  auto options = std::make_shared<ServeOptions>();
  CLI::App* command = app.add_subcommand(
      "serve",
      "an OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions with streaming, /v1/models, "
      "/health, /metrics) over the continuous-batching scheduler");
  add_model_options(*command, options->model);
  add_batch_options(*command, options->batch);
  add_sampling_options(*command, options->sampling);
  add_spec_options(*command, options->spec);
  command->add_option("--host", options->host, "address to listen on")->capture_default_str();
  command->add_option("--port", options->port, "port to listen on (0: any free port, printed)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  command->add_option("--api-key", options->api_key,
                      "require 'Authorization: Bearer KEY' on /v1/ routes (default: $SPECOFFLOAD_API_KEY, else none)");
  command->add_option("--served-model-name", options->served_model_name,
                      "the model's name in /v1/models and requests (default: the model file's stem)");
  command->add_option("--max-body", options->max_body, "largest request body, e.g. 4M")->capture_default_str();
  command
      ->add_option("--max-prompt-tokens", options->max_prompt_tokens,
                   "longest prompt accepted (default: the model's context minus one)")
      ->check(CLI::Range(0, 1 << 24));
  command
      ->add_option("--max-tokens-limit", options->max_tokens_limit,
                   "largest max_tokens a request may ask for (default: the model's context)")
      ->check(CLI::Range(0, 1 << 24));
  command->add_option("-n,--max-tokens", options->default_max_tokens, "tokens per request when it names none")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 24));
  command->add_option("--max-queue", options->max_queue, "requests waiting for a row before new ones get 429")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  command->add_option("--http-threads", options->http_threads,
                      "HTTP worker threads: connections served at once, idle ones included (each is let go after 5 s "
                      "without data)")
      ->capture_default_str()
      ->check(CLI::Range(4, 4096));
  command->add_option("--chat-template", options->chat_template, "force a template: chatml, llama2, mistral, llama3");
  return {command, [options] { return run_serve(*options); }};
}

}  // namespace so::cli
