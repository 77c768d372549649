// Every CUDA and cuBLAS call is checked; a failure is a bug or a broken device, so it
// aborts with the call, the error's name and where it happened.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "base/check.h"

#define SO_CUDA_CHECK(call)                                                                            \
  do {                                                                                                 \
    const cudaError_t so_cuda_error_ = (call);                                                         \
    SO_CHECK(so_cuda_error_ == cudaSuccess, #call, " failed: ", cudaGetErrorName(so_cuda_error_), " (", \
             cudaGetErrorString(so_cuda_error_), ")");                                                 \
  } while (0)

#define SO_CUBLAS_CHECK(call)                                                                 \
  do {                                                                                        \
    const cublasStatus_t so_cublas_status_ = (call);                                          \
    SO_CHECK(so_cublas_status_ == CUBLAS_STATUS_SUCCESS, #call, " failed: ",                  \
             cublasGetStatusName(so_cublas_status_), " (", cublasGetStatusString(so_cublas_status_), ")"); \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, not at the next sync.
#define SO_CUDA_LAUNCHED() SO_CUDA_CHECK(cudaGetLastError())
