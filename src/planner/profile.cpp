#include "planner/profile.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace so {

MatmulSpeed HardwareProfile::matmul_speed(DType dtype) const {
  if (auto found = matmul.find(dtype); found != matmul.end()) return found->second;
  MatmulSpeed slowest{1e30, 1e30};
  for (const auto& [_, speed] : matmul) {
    slowest.weight_gbps = std::min(slowest.weight_gbps, speed.weight_gbps);
    slowest.gflops = std::min(slowest.gflops, speed.gflops);
  }
  return matmul.empty() ? MatmulSpeed{1, 1} : slowest;
}

std::string HardwareProfile::to_json() const {
  nlohmann::ordered_json json = {{"backend", backend},
                                 {"n_threads", n_threads},
                                 {"copy_pinned_gbps", copy_pinned_gbps},
                                 {"copy_pageable_gbps", copy_pageable_gbps},
                                 {"disk_read_gbps", disk_read_gbps},
                                 {"attention_gflops", attention_gflops},
                                 {"cpu_attention_gflops", cpu_attention_gflops},
                                 {"step_overhead_seconds", step_overhead_seconds},
                                 {"op_overhead_seconds", op_overhead_seconds},
                                 {"device_memory_bytes", device_memory_bytes},
                                 {"host_memory_bytes", host_memory_bytes}};
  nlohmann::ordered_json speeds = nlohmann::ordered_json::object();
  for (const auto& [dtype, speed] : matmul) {
    speeds[std::string(dtype_name(dtype))] = {{"weight_gbps", speed.weight_gbps}, {"gflops", speed.gflops}};
  }
  json["matmul"] = speeds;
  nlohmann::ordered_json models_json = nlohmann::ordered_json::object();
  for (const auto& [key, cost] : models) models_json[key] = {{"verify", cost.verify}, {"prefill", cost.prefill}};
  json["models"] = models_json;
  return json.dump(2);
}

Result<HardwareProfile> HardwareProfile::from_json(const std::string& text) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return format_error("a hardware profile is a JSON object (written by `specoffload profile`); this is not JSON");
  }
  HardwareProfile profile;
  auto number = [&](const char* key, auto& field) -> Status {
    const auto found = json.find(key);
    if (found == json.end() || !found->is_number()) {
      return format_error("the hardware profile has no number \"", key, "\"; run `specoffload profile` again");
    }
    field = found->get<std::remove_reference_t<decltype(field)>>();
    return Status::Ok();
  };
  SO_TRY(number("n_threads", profile.n_threads));
  SO_TRY(number("copy_pinned_gbps", profile.copy_pinned_gbps));
  SO_TRY(number("copy_pageable_gbps", profile.copy_pageable_gbps));
  SO_TRY(number("disk_read_gbps", profile.disk_read_gbps));
  SO_TRY(number("attention_gflops", profile.attention_gflops));
  SO_TRY(number("cpu_attention_gflops", profile.cpu_attention_gflops));
  SO_TRY(number("step_overhead_seconds", profile.step_overhead_seconds));
  SO_TRY(number("op_overhead_seconds", profile.op_overhead_seconds));
  SO_TRY(number("device_memory_bytes", profile.device_memory_bytes));
  SO_TRY(number("host_memory_bytes", profile.host_memory_bytes));
  if (auto backend = json.find("backend"); backend != json.end() && backend->is_string()) profile.backend = *backend;
  const auto speeds = json.find("matmul");
  if (speeds == json.end() || !speeds->is_object() || speeds->empty()) {
    return format_error("the hardware profile has no \"matmul\" speeds; run `specoffload profile` again");
  }
  for (const auto& [name, speed] : speeds->items()) {
    const std::optional<DType> dtype = dtype_from_name(name);
    if (!dtype || !speed.is_object() || !speed.contains("weight_gbps") || !speed.contains("gflops")) {
      return format_error("the hardware profile's matmul entry \"", name,
                          "\" is not {\"weight_gbps\": N, \"gflops\": N} for a known dtype");
    }
    profile.matmul[*dtype] = {speed["weight_gbps"].get<double>(), speed["gflops"].get<double>()};
  }
  if (const auto models = json.find("models"); models != json.end()) {
    if (!models->is_object()) return format_error("the hardware profile's \"models\" is not an object");
    for (const auto& [key, cost] : models->items()) {
      StepCost parsed;
      for (auto [name, points] : {std::pair{"verify", &parsed.verify}, std::pair{"prefill", &parsed.prefill}}) {
        const auto found = cost.find(name);
        bool valid = found != cost.end() && found->is_array();
        for (size_t i = 0; valid && i < found->size(); ++i) {
          const auto& point = (*found)[i];
          valid = point.is_array() && point.size() == 2 && point[0].is_number_integer() && point[1].is_number();
          if (valid) points->emplace_back(point[0].get<int64_t>(), point[1].get<double>());
        }
        if (!valid) {
          return format_error("the hardware profile's model entry \"", key, "\" needs \"", name,
                              "\": [[tokens, seconds], ...]; run `specoffload profile -m MODEL` again");
        }
      }
      profile.models[key] = std::move(parsed);
    }
  }
  return profile;
}

Result<HardwareProfile> HardwareProfile::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return io_error("cannot open the hardware profile '", path, "'; write one with `specoffload profile -o ", path, "`");
  std::stringstream text;
  text << in.rdbuf();
  auto profile = from_json(text.str());
  if (!profile.ok()) return profile.status().with_context(str_cat("reading '", path, "'"));
  return profile;
}

}  // namespace so
