#include "openai_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "runtime/openai_api.h"

namespace so::cli {
namespace {

using nlohmann::json;
using ordered = nlohmann::ordered_json;

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string dump(const ordered& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

// note: the loop runs over the longer of the two whatever they hold, so the time taken
// says nothing about where a guess first differs from the key.
bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

void send_error(httplib::Response& response, int status, std::string_view message, std::string_view type,
                std::string_view code = {}, std::string_view param = {}) {
  response.status = status;
  response.set_content(dump(api_error_body(message, type, code, param)), "application/json");
}

// An engine or parser error as an HTTP status and an OpenAI error type.
void send_status(httplib::Response& response, const Status& status) {
  switch (status.code()) {
    case ErrorCode::kResourceExhausted:
      return send_error(response, 429, status.message(), "rate_limit_error", "server_busy");
    case ErrorCode::kUnavailable:
      return send_error(response, 503, status.message(), "service_unavailable", "shutting_down");
    case ErrorCode::kInternal:
    case ErrorCode::kIo:
      return send_error(response, 500, status.message(), "server_error");
    default:
      return send_error(response, 400, status.message(), "invalid_request_error");
  }
}

// The socket a request arrived on: the one whose local and peer ports are the request's.
// note: cpp-httplib (0.11) gives a handler no way to its connection, and a non-streaming
// request writes nothing until its answer, so a client that left is only seen on the socket.
int request_socket(const httplib::Request& request) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error)) {
    int fd = -1;
    const std::string name = entry.path().filename().string();
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc()) continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_size = sizeof local, peer_size = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size) != 0 ||
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0) {
      continue;
    }
    auto port = [](const sockaddr_storage& address) {
      if (address.ss_family == AF_INET) return int(ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port));
      if (address.ss_family == AF_INET6) return int(ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port));
      return -1;
    };
    if (port(local) != request.local_port || port(peer) != request.remote_port) continue;
    char host[INET6_ADDRSTRLEN] = {};
    const void* address = peer.ss_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in&>(peer).sin_addr)
                                                    : static_cast<const void*>(&reinterpret_cast<sockaddr_in6&>(peer).sin6_addr);
    if (::inet_ntop(peer.ss_family, address, host, sizeof host) && request.remote_addr == host) return fd;
  }
  return -1;
}

// Whether the peer of `socket` hung up (-1: never known).
bool peer_closed(int socket) {
  if (socket < 0) return false;
  pollfd poll_fd{socket, POLLRDHUP, 0};
  return ::poll(&poll_fd, 1, 0) > 0 && (poll_fd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// The end of the longest prefix of text[0, end) that does not end inside a UTF-8
// character: a streamed piece may stop in the middle of one.
size_t utf8_complete_end(std::string_view text, size_t end) {
  if (end == 0) return 0;
  size_t start = end - 1;
  while (start > 0 && end - start < 4 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  const auto lead = static_cast<unsigned char>(text[start]);
  const size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
  return start + length > end ? start : end;
}

// One server-sent-events response, advanced by httplib's chunked content provider.
struct EventStream {
  std::shared_ptr<RequestTicket> ticket;
  ApiRequest api;
  std::string id, model;
  int64_t created = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::string text;    // the generated pieces so far
  size_t sent = 0;     // bytes of text already sent
  size_t settled = 0;  // text before the newest token
  size_t hold = 0;     // bytes held back while they may begin a stop string
  bool first = true;
  std::atomic<int>* in_flight = nullptr;
};

bool write_event(httplib::DataSink& sink, const std::string& data) {
  const std::string event = "data: " + data + "\n\n";
  return sink.write(event.data(), event.size());
}

// Sends what arrived since the last call; false when the client went away.
bool advance_stream(EventStream& stream, const Tokenizer& tokenizer, httplib::DataSink& sink) {
  if (stream.first && stream.api.chat) {
    if (!write_event(sink, dump(api_stream_chunk(stream.api, stream.id, stream.model, stream.created, "", {}, true)))) {
      return false;
    }
    stream.first = false;
  }
  std::vector<int32_t> tokens;
  const bool finished = stream.ticket->wait(tokens, std::chrono::milliseconds(200));
  for (int32_t token : tokens) {
    stream.settled = stream.text.size();
    stream.text += tokenizer.token_to_piece(token);
  }
  stream.completion_tokens += int64_t(tokens.size());
  GenerationResult result;
  size_t end = stream.text.size();
  if (finished) {
    result = stream.ticket->result();
    end -= std::min(end, result.stop_cut_bytes);
  } else {
    // note: with stop strings, the newest token may be the one that completes a match the
    // scheduler reports with the finish, and up to `hold` bytes before it may start one.
    if (!stream.api.stop.empty()) end = stream.settled > stream.hold ? stream.settled - stream.hold : 0;
    end = utf8_complete_end(stream.text, end);
  }
  if (end > stream.sent) {
    const std::string_view delta = std::string_view(stream.text).substr(stream.sent, end - stream.sent);
    if (!write_event(sink, dump(api_stream_chunk(stream.api, stream.id, stream.model, stream.created, delta, {},
                                                 stream.first)))) {
      return false;
    }
    stream.sent = end;
    stream.first = false;
  }
  if (!finished) return true;
  if (result.finish == FinishReason::kError) {
    if (!write_event(sink, dump(api_error_body(result.error.message(), "server_error", "generation_failed"))))
      return false;
  } else {
    if (!write_event(sink, dump(api_stream_chunk(stream.api, stream.id, stream.model, stream.created, "",
                                                 api_finish_reason(result), stream.first)))) {
      return false;
    }
    if (stream.api.include_usage) {
      ordered usage = {{"id", stream.id},
                       {"object", stream.api.chat ? "chat.completion.chunk" : "text_completion"},
                       {"created", stream.created},
                       {"model", stream.model},
                       {"choices", ordered::array()},
                       {"usage", api_usage(stream.prompt_tokens, stream.completion_tokens)}};
      if (!write_event(sink, dump(usage))) return false;
    }
  }
  const std::string done = "data: [DONE]\n\n";
  if (!sink.write(done.data(), done.size())) return false;
  sink.done();
  return true;
}

void add_metric(std::ostringstream& out, std::string_view name, std::string_view type, std::string_view help,
                double value, std::string_view labels = {}) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
      << name << labels << " " << value << "\n";
}

}  // namespace

OpenAiServer::OpenAiServer(Engine& engine, RequestQueue& queue, ServerConfig config)
    : engine_(engine), queue_(queue), config_(std::move(config)), http_(std::make_unique<httplib::Server>()) {
  std::random_device random;
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "%06x-", unsigned(random() & 0xffffff));
  id_prefix_ = prefix;
  started_unix_ = unix_now();
  const int n_ctx = engine_.config().n_ctx_train;
  if (config_.max_prompt_tokens <= 0 || config_.max_prompt_tokens >= n_ctx) config_.max_prompt_tokens = n_ctx - 1;
  if (config_.max_tokens_limit <= 0) config_.max_tokens_limit = n_ctx;
  route();
}

OpenAiServer::~OpenAiServer() = default;

int OpenAiServer::bind(const std::string& host, int port) {
  if (port == 0) return http_->bind_to_any_port(host);
  return http_->bind_to_port(host, port) ? port : -1;
}

bool OpenAiServer::listen() { return http_->listen_after_bind(); }

void OpenAiServer::stop() {
  // Streams still sending are cut when the server stops: let them end first.
  for (int i = 0; i < 600 && in_flight_streams_.load() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  http_->stop();
}

bool OpenAiServer::authorized(const httplib::Request& request) const {
  if (config_.api_key.empty()) return true;
  // note: the scheme name is case-insensitive (RFC 9110 11.1) and spaces may follow it.
  const std::string header = request.get_header_value("Authorization");
  std::string_view given;
  if (header.size() > 6 && strncasecmp(header.c_str(), "bearer", 6) == 0 && (header[6] == ' ' || header[6] == '\t')) {
    given = std::string_view(header).substr(6);
    while (!given.empty() && (given.front() == ' ' || given.front() == '\t')) given.remove_prefix(1);
  }
  return constant_time_equal(given, config_.api_key);
}

void OpenAiServer::route() {
  httplib::Server& http = *http_;
  const int threads = std::max(4, config_.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http.set_payload_max_length(config_.max_body_bytes);
  http.set_keep_alive_max_count(1000);
  // note: every connection holds a worker thread while it sends its request or idles between
  // requests, so a client that sends half a request and waits must be let go soon: these
  // bound how long (each read, not the whole request), so a flood of idle connections
  // delays others by seconds, not for good.
  http.set_keep_alive_timeout(5);
  http.set_read_timeout(5);
  http.set_write_timeout(30);

  http.set_pre_routing_handler([this](const httplib::Request& request, httplib::Response& response) {
    if (request.path.rfind("/v1/", 0) == 0 && !authorized(request)) {
      send_error(response, 401, "invalid or missing API key: send the header 'Authorization: Bearer KEY'",
                 "invalid_request_error", "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& request,
                                                                 httplib::Response& response) {
    if (!response.body.empty()) return httplib::Server::HandlerResponse::Handled;
    switch (response.status) {
      case 404:
        send_error(response, 404,
                   str_cat("no route for ", request.method, " ", request.path,
                           "; this server has GET /v1/models, POST /v1/completions, "
                           "POST /v1/chat/completions, GET /health and GET /metrics"),
                   "invalid_request_error", "unknown_url");
        break;
      case 413:
        send_error(response, 413, "the request body is larger than the server's limit (--max-body)",
                   "invalid_request_error", "request_too_large");
        break;
      default:
        send_error(response, response.status, str_cat("the request could not be served (HTTP ", response.status, ")"),
                   response.status >= 500 ? "server_error" : "invalid_request_error");
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
    std::string what = "unknown";
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(response, 500, str_cat("internal error: ", what), "server_error");
  });
  http.set_logger([this](const httplib::Request&, const httplib::Response& response) {
    std::lock_guard lock(status_mutex_);
    responses_by_status_[response.status] += 1;
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& response) {
    const bool draining = draining_.load();
    response.status = draining ? 503 : 200;
    response.set_content(dump({{"status", draining ? "draining" : "ok"}}), "application/json");
  });
  auto model_object = [this] {
    return ordered{
        {"id", config_.model_name}, {"object", "model"}, {"created", started_unix_}, {"owned_by", "specoffload"}};
  };
  http.Get("/v1/models", [model_object](const httplib::Request&, httplib::Response& response) {
    response.set_content(dump({{"object", "list"}, {"data", ordered::array({model_object()})}}), "application/json");
  });
  http.Get(R"(/v1/models/(.+))", [this, model_object](const httplib::Request& request, httplib::Response& response) {
    if (request.matches[1] != config_.model_name) {
      return send_error(response, 404,
                        str_cat("model '", request.matches[1].str(),
                                "' is not served here; this "
                                "server serves '",
                                config_.model_name, "'"),
                        "invalid_request_error", "model_not_found", "model");
    }
    response.set_content(dump(model_object()), "application/json");
  });
  http.Post("/v1/completions", [this](const httplib::Request& request, httplib::Response& response) {
    handle_generation(request, response, /*chat=*/false);
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& request, httplib::Response& response) {
    handle_generation(request, response, /*chat=*/true);
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) { handle_metrics(response); });
}

void OpenAiServer::handle_generation(const httplib::Request& request, httplib::Response& response, bool chat) {
  if (draining_.load()) {
    return send_error(response, 503, "the server is shutting down and takes no new requests", "service_unavailable",
                      "shutting_down");
  }
  json body;
  try {
    body = json::parse(request.body);
  } catch (const json::parse_error& error) {
    return send_error(response, 400, str_cat("the body is not valid JSON (", error.what(), "); expected a JSON object"),
                      "invalid_request_error", "invalid_json");
  }
  ApiRequest api;
  if (Status parsed = parse_api_body(body, chat, {"", /*allow_stream=*/true}, api); !parsed.ok()) {
    return send_status(response, parsed);
  }
  if (!api.model.empty() && api.model != config_.model_name) {
    return send_error(response, 404,
                      str_cat("model '", api.model, "' is not served here; this server serves '", config_.model_name,
                              "' (GET /v1/models)"),
                      "invalid_request_error", "model_not_found", "model");
  }
  auto prompt_tokens = api_prompt_tokens(engine_, api, config_.chat_template);
  if (!prompt_tokens.ok()) return send_status(response, prompt_tokens.status());
  const int64_t n_prompt = int64_t(prompt_tokens->size());
  if (n_prompt > config_.max_prompt_tokens) {
    return send_error(
        response, 400,
        str_cat("the prompt has ", n_prompt, " tokens; this server takes at most ", config_.max_prompt_tokens,
                " (the model's context is ", engine_.config().n_ctx_train, "); shorten it"),
        "invalid_request_error", "context_length_exceeded", chat ? "messages" : "prompt");
  }
  const int max_tokens = api.max_tokens.value_or(config_.default_max_tokens);
  if (max_tokens > config_.max_tokens_limit) {
    return send_error(response, 400,
                      str_cat("max_tokens is ", max_tokens, "; this server allows at most ", config_.max_tokens_limit),
                      "invalid_request_error", "max_tokens_too_large", "max_tokens");
  }
  GenerationRequest generation;
  generation.prompt_tokens = std::move(prompt_tokens).value();
  generation.max_tokens = max_tokens;
  generation.sampling = api_sampling(config_.sampling, api);
  generation.stream_id = next_request_.fetch_add(1);
  generation.stop = api.stop;
  if (Status valid = check_generation_request(generation, engine_.config().n_ctx_train, engine_.config().n_vocab);
      !valid.ok()) {
    return send_status(response, valid);
  }
  auto ticket = queue_.submit(std::move(generation));
  if (!ticket.ok()) return send_status(response, ticket.status());

  const std::string id = str_cat(chat ? "chatcmpl-" : "cmpl-", id_prefix_, (*ticket)->request().stream_id);
  const int64_t created = unix_now();
  if (!api.stream) {
    // A client that goes away while it waits cancels its row (a stream's does when a write fails).
    const int socket = request_socket(request);
    std::vector<int32_t> tokens;
    while (!(*ticket)->wait(tokens, std::chrono::milliseconds(200))) {
      tokens.clear();
      if (peer_closed(socket)) {
        (*ticket)->cancel();
        return;
      }
    }
    const GenerationResult result = (*ticket)->result();
    if (result.finish == FinishReason::kError) return send_status(response, result.error);
    const ApiCompletion completion{completion_text(engine_.tokenizer(), result), api_finish_reason(result), n_prompt,
                                   int64_t(result.tokens.size())};
    response.set_content(dump(api_response_body(api, id, config_.model_name, created, completion)), "application/json");
    return;
  }
  auto stream = std::make_shared<EventStream>();
  stream->ticket = std::move(ticket).value();
  stream->id = id;
  stream->model = api.model.empty() ? config_.model_name : api.model;
  stream->created = created;
  stream->prompt_tokens = n_prompt;
  for (const std::string& stop : api.stop) stream->hold = std::max(stream->hold, stop.size() - 1);
  stream->api = std::move(api);
  stream->in_flight = &in_flight_streams_;
  in_flight_streams_.fetch_add(1);
  response.set_header("Cache-Control", "no-cache");
  const Tokenizer& tokenizer = engine_.tokenizer();
  response.set_chunked_content_provider(
      "text/event-stream",
      [stream, &tokenizer](size_t, httplib::DataSink& sink) {
        if (advance_stream(*stream, tokenizer, sink)) return true;
        stream->ticket->cancel();  // the client went away
        return false;
      },
      [stream](bool success) {
        if (!success) stream->ticket->cancel();
        stream->in_flight->fetch_sub(1);
      });
}

void OpenAiServer::handle_metrics(httplib::Response& response) const {
  const QueueMetrics m = queue_.metrics();
  const EngineStats& e = m.engine;
  std::ostringstream out;
  add_metric(out, "specoffload_queue_depth", "gauge", "Requests waiting for a row.", double(m.waiting));
  add_metric(out, "specoffload_running_requests", "gauge", "Requests generating.", double(m.running));
  add_metric(out, "specoffload_requests_submitted_total", "counter", "Requests accepted into the queue.",
             double(m.submitted));
  out << "# HELP specoffload_requests_finished_total Requests finished, by finish reason.\n"
         "# TYPE specoffload_requests_finished_total counter\n";
  for (const auto& [reason, count] : m.finished) {
    out << "specoffload_requests_finished_total{reason=\"" << reason << "\"} " << count << "\n";
  }
  add_metric(out, "specoffload_prompt_tokens_total", "counter", "Prompt tokens of finished requests.",
             double(m.prompt_tokens));
  add_metric(out, "specoffload_generated_tokens_total", "counter", "Tokens generated.", double(m.generated_tokens));
  add_metric(out, "specoffload_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s.",
             m.recent_tokens_per_second);
  add_metric(out, "specoffload_passes_total", "counter", "Target passes (forward steps of the scheduler).",
             double(e.passes));
  add_metric(out, "specoffload_drafted_tokens_total", "counter", "Draft tokens verified.", double(e.drafted_tokens));
  add_metric(out, "specoffload_accepted_tokens_total", "counter", "Draft tokens accepted.", double(e.accepted_tokens));
  add_metric(out, "specoffload_acceptance_rate", "gauge", "Accepted over drafted tokens since start.",
             e.acceptance_rate());
  add_metric(out, "specoffload_streamed_bytes_total", "counter", "Weight bytes copied host to device (offload).",
             double(e.streamed_bytes));
  add_metric(out, "specoffload_decode_seconds_total", "counter", "Seconds of decoding and verification.",
             e.decode_seconds);
  add_metric(out, "specoffload_prefill_seconds_total", "counter", "Seconds of prefill.", e.prefill_seconds);
  {
    std::lock_guard lock(status_mutex_);
    out << "# HELP specoffload_http_responses_total HTTP responses, by status code.\n"
           "# TYPE specoffload_http_responses_total counter\n";
    for (const auto& [status, count] : responses_by_status_) {
      out << "specoffload_http_responses_total{code=\"" << status << "\"} " << count << "\n";
    }
  }
  response.set_content(out.str(), "text/plain; version=0.0.4");
}

}  // namespace so::cli
