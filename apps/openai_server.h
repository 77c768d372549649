// The OpenAI-compatible HTTP server (`specoffload serve`): /v1/models, /v1/completions,
// /v1/chat/completions (JSON or server-sent events), /health and /metrics (Prometheus).
// Requests go through a RequestQueue into the engine's continuous-batching scheduler.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "runtime/engine.h"
#include "runtime/request_queue.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace so::cli {

struct ServerConfig {
  std::string model_name;  // what /v1/models lists and requests may name
  std::string api_key;     // empty: no authentication
  size_t max_body_bytes = 4 << 20;
  int max_prompt_tokens = 0;     // 0: the model's context minus one
  int max_tokens_limit = 0;      // largest max_tokens a request may ask for; 0: the context
  int default_max_tokens = 256;  // when a request names none
  int http_threads = 512;        // connections served at once (each holds a thread while it waits)
  SamplingParams sampling;       // defaults for what a request leaves out
  std::string chat_template;     // forced template, or "" for the model's
};

class OpenAiServer {
 public:
  OpenAiServer(Engine& engine, RequestQueue& queue, ServerConfig config);
  ~OpenAiServer();

  // Binds (port 0: any free port); returns the port, or -1.
  int bind(const std::string& host, int port);
  // Serves until stop(); returns false if the server failed.
  bool listen();
  // Draining: /health reports it and new generations get 503; what runs goes on.
  void begin_drain() { draining_.store(true); }
  void stop();

 private:
  void route();
  void handle_generation(const httplib::Request& request, httplib::Response& response, bool chat);
  void handle_metrics(httplib::Response& response) const;
  bool authorized(const httplib::Request& request) const;

  Engine& engine_;
  RequestQueue& queue_;
  ServerConfig config_;
  std::unique_ptr<httplib::Server> http_;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_request_{1};
  std::atomic<int> in_flight_streams_{0};  // event streams still sending
  std::string id_prefix_;
  int64_t started_unix_ = 0;
  mutable std::mutex status_mutex_;
  std::map<int, int64_t> responses_by_status_;
};

}  // namespace so::cli
