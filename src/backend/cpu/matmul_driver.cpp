// Splits a matmul (or several sharing one x) into pool tasks: activation quantization over
// rows, then outputs over column chunks and, for many rows, row blocks.
#include "backend/cpu/matmul_driver.h"

#include <algorithm>

#include "backend/cpu/matmul_internal.h"
#include "base/check.h"

namespace so::cpu::detail {
namespace {

// Column chunks are multiples of this so tiles of 4 or 8 weight rows stay whole.
constexpr int64_t kColumnAlign = 8;
// Rows per row block: the activations of a block stay in L1/L2 while a column chunk's
// weights are reused against them.
constexpr int64_t kRowBlock = 64;
// Aim for this many tasks per thread so dynamic claiming evens out uneven threads.
constexpr int64_t kTasksPerThread = 4;

int64_t matmul_reference_row_bytes(DType weight_dtype, int64_t n_in) {
  if (activation_dtype(weight_dtype) == DType::kF32) return 0;  // dots read x itself
  return reference_activation_row_bytes(weight_dtype, n_in);
}

void matmul_reference_compute(const TensorView& weight, const uint8_t* activations, int64_t activation_stride,
                              int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end, float* y) {
  const int64_t n_out = weight.shape[0], n_in = weight.shape[1];
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t o = col_begin; o < col_end; ++o) {
      y[r * n_out + o] = reference_dot(weight.dtype, weight.row(o), activations + r * activation_stride, n_in);
    }
  }
}

}  // namespace

const MatmulKernelSet& reference_matmul_kernels() {
  static const MatmulKernelSet kernels{matmul_reference_row_bytes, reference_quantize_activation_row,
                                       matmul_reference_compute};
  return kernels;
}

void run_matmul(ThreadPool& pool, const MatmulKernelSet& kernels, MatmulWorkspace& workspace,
                std::span<const TensorView> weights, const float* x, int64_t n_rows, std::span<float* const> ys) {
  SO_CHECK_EQ(weights.size(), ys.size(), "matmul_many: one output per weight");
  if (weights.empty() || n_rows == 0) return;
  const DType dtype = weights[0].dtype;
  SO_CHECK_EQ(weights[0].shape.n_dims, 2, "matmul: weight must be (n_out, n_in)");
  const int64_t n_in = weights[0].shape[1];
  check_matmul_weight(dtype, n_in);
  for (const TensorView& weight : weights) {
    SO_CHECK(weight.dtype == dtype && weight.shape.n_dims == 2 && weight.shape[1] == n_in,
             "matmul_many: weights must share dtype and n_in; got ", dtype_name(weight.dtype), " ",
             weight.shape.to_string(), " after ", dtype_name(dtype), " (n, ", n_in, ")");
  }

  // Activations: packed once, threaded over rows.
  const int64_t row_bytes = kernels.activation_row_bytes(dtype, n_in);
  const uint8_t* activations = reinterpret_cast<const uint8_t*>(x);
  int64_t activation_stride = n_in * static_cast<int64_t>(sizeof(float));
  if (row_bytes > 0) {
    workspace.packed_activations.resize(n_rows * row_bytes);
    uint8_t* packed = workspace.packed_activations.as<uint8_t>();
    const int64_t rows_per_task = std::max<int64_t>(1, n_rows / (pool.n_threads() * kTasksPerThread));
    const int64_t n_tasks = (n_rows + rows_per_task - 1) / rows_per_task;
    pool.parallel_for(n_tasks, [&](int64_t task, int) {
      const int64_t end = std::min(n_rows, (task + 1) * rows_per_task);
      for (int64_t r = task * rows_per_task; r < end; ++r) {
        kernels.quantize_row(dtype, x + r * n_in, n_in, packed + r * row_bytes);
      }
    });
    activations = packed;
    activation_stride = row_bytes;
  }

  // Outputs: column chunks of every weight x row blocks.
  int64_t total_columns = 0;
  for (const TensorView& weight : weights) total_columns += weight.shape[0];
  const int64_t n_row_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
  const int64_t target_chunks = std::max<int64_t>(1, pool.n_threads() * kTasksPerThread / n_row_blocks);
  int64_t chunk_columns = (total_columns + target_chunks - 1) / target_chunks;
  chunk_columns = std::max(kColumnAlign, (chunk_columns + kColumnAlign - 1) / kColumnAlign * kColumnAlign);

  // note: a small table maps a global chunk index to (weight, first column); matmul_many
  // takes a handful of weights, so a linear scan per task is cheap.
  constexpr int kMaxWeights = 16;
  SO_CHECK_LE(weights.size(), static_cast<size_t>(kMaxWeights), "matmul_many: too many weights");
  int64_t chunk_start[kMaxWeights + 1];
  chunk_start[0] = 0;
  for (size_t w = 0; w < weights.size(); ++w) {
    chunk_start[w + 1] = chunk_start[w] + (weights[w].shape[0] + chunk_columns - 1) / chunk_columns;
  }
  const int64_t n_chunks = chunk_start[weights.size()];
  pool.parallel_for(n_chunks * n_row_blocks, [&](int64_t task, int) {
    const int64_t chunk = task / n_row_blocks, row_block = task % n_row_blocks;
    size_t w = 0;
    while (chunk >= chunk_start[w + 1]) ++w;
    const int64_t col_begin = (chunk - chunk_start[w]) * chunk_columns;
    const int64_t col_end = std::min(weights[w].shape[0], col_begin + chunk_columns);
    const int64_t row_begin = row_block * kRowBlock, row_end = std::min(n_rows, row_begin + kRowBlock);
    kernels.compute(weights[w], activations, activation_stride, row_begin, row_end, col_begin, col_end, ys[w]);
  });
}

void run_matmul_groups(ThreadPool& pool, const MatmulKernelSet& kernels, MatmulWorkspace& workspace,
                       std::span<const MatmulGroup> groups) {
  if (groups.empty()) return;
  const DType dtype = groups[0].weight.dtype;
  const int64_t n_in = groups[0].weight.shape[1];
  check_matmul_weight(dtype, n_in);
  std::vector<int64_t>& first_row = workspace.group_first_row;
  first_row.assign(1, 0);
  int64_t total_work = 0;
  for (const MatmulGroup& group : groups) {
    SO_CHECK(group.weight.dtype == dtype && group.weight.shape.n_dims == 2 && group.weight.shape[1] == n_in,
             "matmul_groups: weights must share dtype and n_in; got ", dtype_name(group.weight.dtype), " ",
             group.weight.shape.to_string(), " after ", dtype_name(dtype), " (n, ", n_in, ")");
    first_row.push_back(first_row.back() + group.n_rows);
    total_work += group.n_rows * group.weight.shape[0];
  }
  const int64_t total_rows = first_row.back();
  if (total_rows == 0) return;

  // Activations: every group's rows packed into one buffer, threaded over all rows.
  const int64_t row_bytes = kernels.activation_row_bytes(dtype, n_in);
  if (row_bytes > 0) {
    workspace.packed_activations.resize(total_rows * row_bytes);
    uint8_t* packed = workspace.packed_activations.as<uint8_t>();
    const int64_t rows_per_task = std::max<int64_t>(1, total_rows / (pool.n_threads() * kTasksPerThread));
    pool.parallel_for((total_rows + rows_per_task - 1) / rows_per_task, [&](int64_t task, int) {
      const int64_t end = std::min(total_rows, (task + 1) * rows_per_task);
      size_t g = size_t(std::upper_bound(first_row.begin(), first_row.end(), task * rows_per_task) - first_row.begin()) - 1;
      for (int64_t r = task * rows_per_task; r < end; ++r) {
        while (r >= first_row[g + 1]) ++g;
        kernels.quantize_row(dtype, groups[g].x + (r - first_row[g]) * n_in, n_in, packed + r * row_bytes);
      }
    });
  }

  // Outputs: each group's row blocks x column chunks, chunks sized so the whole call makes about
  // kTasksPerThread tasks per thread, shared out by work.
  std::vector<MatmulWorkspace::Task>& tasks = workspace.tasks;
  tasks.clear();
  const int64_t target_tasks = pool.n_threads() * kTasksPerThread;
  for (size_t g = 0; g < groups.size(); ++g) {
    const int64_t n_out = groups[g].weight.shape[0], n_rows = groups[g].n_rows;
    if (n_rows == 0) continue;
    const int64_t n_row_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
    const int64_t share = (target_tasks * n_rows * n_out + total_work - 1) / total_work;
    const int64_t n_chunks = std::max<int64_t>(1, (share + n_row_blocks - 1) / n_row_blocks);
    int64_t chunk_columns = (n_out + n_chunks - 1) / n_chunks;
    chunk_columns = std::max(kColumnAlign, (chunk_columns + kColumnAlign - 1) / kColumnAlign * kColumnAlign);
    for (int64_t row = 0; row < n_rows; row += kRowBlock) {
      for (int64_t col = 0; col < n_out; col += chunk_columns) {
        tasks.push_back({g, row, std::min(n_rows, row + kRowBlock), col, std::min(n_out, col + chunk_columns)});
      }
    }
  }
  const int64_t float_stride = n_in * static_cast<int64_t>(sizeof(float));
  pool.parallel_for(int64_t(tasks.size()), [&](int64_t i, int) {
    const MatmulWorkspace::Task& task = tasks[size_t(i)];
    const MatmulGroup& group = groups[task.group];
    const uint8_t* activations = row_bytes > 0
                                     ? workspace.packed_activations.as<uint8_t>() + first_row[task.group] * row_bytes
                                     : reinterpret_cast<const uint8_t*>(group.x);
    kernels.compute(group.weight, activations, row_bytes > 0 ? row_bytes : float_stride, task.row_begin, task.row_end,
                    task.col_begin, task.col_end, group.y);
  });
}

}  // namespace so::cpu::detail
