#include "runtime/profile_machine.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/timer.h"
#include "kv/kv_cache.h"

namespace so {
namespace {

// Best-of timing: runs fn until `budget` seconds pass (at least 3 times), returns the
// fastest run's seconds.
template <typename Fn>
double fastest_seconds(double budget, Fn&& fn) {
  double best = 1e30;
  const Stopwatch total;
  for (int run = 0; run < 3 || total.elapsed_seconds() < budget; ++run) {
    const Stopwatch watch;
    fn();
    best = std::min(best, watch.elapsed_seconds());
    if (run > 200) break;
  }
  return best;
}

Result<double> copy_gbps(Backend& backend, MemoryKind source_kind, double budget) {
  const size_t bytes = size_t(64) << 20;
  SO_ASSIGN_OR_RETURN(Buffer source, backend.allocate(bytes, source_kind));
  SO_ASSIGN_OR_RETURN(Buffer destination, backend.allocate(bytes, MemoryKind::kDevice));
  std::memset(source.data(), 1, bytes);
  std::unique_ptr<Stream> stream = backend.create_stream(StreamRole::kCopy);
  const double seconds = fastest_seconds(budget, [&] {
    stream->copy(destination.data(), source.data(), bytes, "profile copy");
    stream->synchronize();
  });
  return double(bytes) / seconds / 1e9;
}

// Cold sequential read of a file: the page cache is asked to drop it first.
double disk_read_gbps(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return 0.0;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  std::vector<char> chunk(size_t(8) << 20);
  int64_t total = 0;
  const Stopwatch watch;
  for (ssize_t got; (got = ::read(fd, chunk.data(), chunk.size())) > 0 && total < (int64_t(1) << 30);) total += got;
  const double seconds = watch.elapsed_seconds();
  ::close(fd);
  return seconds > 0 && total > 0 ? double(total) / seconds / 1e9 : 0.0;
}

// Backend memory holding `bytes` copies of `byte` (written through the host: a device
// backend's memory is not host-addressable).
Result<Buffer> filled_buffer(Backend& backend, size_t bytes, uint8_t byte) {
  SO_ASSIGN_OR_RETURN(Buffer buffer, backend.allocate(bytes, MemoryKind::kDevice));
  const std::vector<uint8_t> host(bytes, byte);
  backend.copy_to_device(buffer.data(), host.data(), bytes);
  return buffer;
}

Result<Buffer> float_buffer(Backend& backend, size_t n, float value) {
  SO_ASSIGN_OR_RETURN(Buffer buffer, backend.allocate(n * sizeof(float), MemoryKind::kDevice));
  const std::vector<float> host(n, value);
  backend.copy_to_device(buffer.data(), host.data(), n * sizeof(float));
  return buffer;
}

// weight_gbps and gflops from two matmul timings: rows 1 (reading dominates) and many.
Result<MatmulSpeed> matmul_speed(Backend& backend, DType dtype, double budget) {
  // note: 64 MiB of weights, well past the caches, as a model's layers are.
  const int64_t n_in = 4096, many = 64;
  const int64_t n_out = (int64_t(64) << 20) / dtype_row_bytes(dtype, n_in);
  TensorView weight{dtype, Shape{n_out, n_in}, nullptr};
  // note: 0x11 bytes are small normal numbers in every float and scale format, so no
  // denormals or NaNs skew the timing.
  SO_ASSIGN_OR_RETURN(Buffer weights, filled_buffer(backend, size_t(weight.bytes()), 0x11));
  weight.data = weights.data();
  SO_ASSIGN_OR_RETURN(Buffer x, float_buffer(backend, size_t(many * n_in), 0.01f));
  SO_ASSIGN_OR_RETURN(Buffer y, backend.allocate(size_t(many * n_out) * sizeof(float), MemoryKind::kDevice));
  auto timed = [&](int64_t rows) {
    return fastest_seconds(budget / 2, [&] {
      backend.matmul(weight, x.as<float>(), rows, y.as<float>());
      backend.synchronize();
    });
  };
  const double one = timed(1);
  const double lots = timed(many);
  const double params = double(n_out) * n_in;
  const double per_token = std::max((lots - one) / (many - 1), 1e-12);
  MatmulSpeed speed;
  speed.gflops = 2 * params / per_token / 1e9;
  speed.weight_gbps = double(weight.bytes()) / std::max(one - per_token, one * 0.05) / 1e9;
  return speed;
}

// The fixed cost of one op: a tiny matmul, all dispatch and synchronization.
Result<double> op_overhead_seconds(Backend& backend, double budget) {
  TensorView weight{DType::kF32, Shape{64, 64}, nullptr};
  SO_ASSIGN_OR_RETURN(Buffer weights, filled_buffer(backend, size_t(weight.bytes()), 0x11));
  weight.data = weights.data();
  SO_ASSIGN_OR_RETURN(Buffer x, float_buffer(backend, 64, 0.01f));
  SO_ASSIGN_OR_RETURN(Buffer y, float_buffer(backend, 64, 0.0f));
  return fastest_seconds(budget, [&] {
    for (int i = 0; i < 100; ++i) backend.matmul(weight, x.as<float>(), 1, y.as<float>());
    backend.synchronize();
  }) / 100;
}

// Attention over a paged KV cache: 8 rows of 512 positions, 4 new queries each. With the
// cache in host memory it is the host threads' attention (the host KV tier) on host buffers;
// the trips of q, k, v and the output are the link's, measured with the copies.
Result<double> attention_gflops(Backend& backend, double budget, KvPlacement placement) {
  KvGeometry geometry{1, 4, 64, 256, DType::kF16};
  KvCache kv(backend, geometry, 0, placement);
  AttentionParams params{16, 4, 64, 0.125f};
  const int n_rows = 8, context = 512, queries = 4;
  const bool host = placement == KvPlacement::kHost;
  std::vector<AttentionRow> rows;
  std::vector<int32_t> ids;
  for (int r = 0; r < n_rows; ++r) {
    ids.push_back(kv.add_row());
    SO_TRY(kv.reserve(ids.back(), context));
  }
  auto buffer = [&](size_t n, float value) -> Result<Buffer> {
    if (!host) return float_buffer(backend, n, value);
    SO_ASSIGN_OR_RETURN(Buffer b, backend.allocate(n * sizeof(float), MemoryKind::kPinnedHost));
    std::fill(b.as<float>(), b.as<float>() + n, value);
    return b;
  };
  // Fill the cache (zeros are fine for timing) then time the last `queries` positions.
  SO_ASSIGN_OR_RETURN(Buffer zeros, buffer(size_t(context) * geometry.n_kv_heads * geometry.head_dim, 0.0f));
  for (int r = 0; r < n_rows; ++r) {
    const AttentionRow all = kv.attention_row(ids[r], 0, context);
    if (host) {
      backend.host_kv_store(geometry, 0, std::span(&all, 1), zeros.as<float>(), zeros.as<float>());
    } else {
      backend.kv_store(geometry, 0, std::span(&all, 1), zeros.as<float>(), zeros.as<float>());
    }
    rows.push_back(kv.attention_row(ids[r], r * queries, queries));
    rows.back().kv_start = context - queries;
  }
  const size_t q_floats = size_t(n_rows) * queries * params.n_heads * params.head_dim;
  SO_ASSIGN_OR_RETURN(Buffer q, buffer(q_floats, 0.01f));
  SO_ASSIGN_OR_RETURN(Buffer out, buffer(q_floats, 0.0f));
  const double seconds = fastest_seconds(budget, [&] {
    if (host) {
      backend.host_attention(geometry, 0, rows, params, q.as<float>(), out.as<float>());
    } else {
      backend.attention(geometry, 0, rows, params, q.as<float>(), out.as<float>());
      backend.synchronize();
    }
  });
  double pairs = 0;
  for (int i = 0; i < queries; ++i) pairs += n_rows * double(context - queries + i + 1);
  return 4.0 * params.head_dim * params.n_heads * pairs / seconds / 1e9;
}

}  // namespace

Result<HardwareProfile> profile_machine(Backend& backend, const ProfileOptions& options) {
  const double budget = options.seconds_per_measure;
  HardwareProfile profile;
  profile.backend = backend.name();
  SO_ASSIGN_OR_RETURN(profile.copy_pinned_gbps, copy_gbps(backend, MemoryKind::kPinnedHost, budget));
  SO_ASSIGN_OR_RETURN(profile.copy_pageable_gbps, copy_gbps(backend, MemoryKind::kHost, budget));
  if (!options.disk_file.empty()) profile.disk_read_gbps = disk_read_gbps(options.disk_file);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ2_K,
                      DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kMXFP4}) {
    SO_ASSIGN_OR_RETURN(profile.matmul[dtype], matmul_speed(backend, dtype, budget));
  }
  SO_ASSIGN_OR_RETURN(profile.attention_gflops, attention_gflops(backend, budget, KvPlacement::kDevice));
  SO_ASSIGN_OR_RETURN(profile.cpu_attention_gflops, attention_gflops(backend, budget, KvPlacement::kHost));
  SO_ASSIGN_OR_RETURN(profile.op_overhead_seconds, op_overhead_seconds(backend, budget));
  const int64_t pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGE_SIZE);
  profile.host_memory_bytes = pages * page_size;
  // note: the CPU backend's "device" is host RAM; a device backend reports its budget.
  const int64_t device_free = backend.device_memory_free();
  profile.device_memory_bytes = device_free >= 0 ? device_free : profile.host_memory_bytes;
  return profile;
}

}  // namespace so
