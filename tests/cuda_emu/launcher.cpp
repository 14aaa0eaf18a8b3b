// Host build of cgru/backends/gru.cu for the CPU emulation tests (see fake_cupy.py).
// Exposes each kernel<float|double> by its CuPy name expression with its parameter sizes, so
// the fake RawKernel can check every argument as the real launch would need it to be.
#define CGRU_EMULATION 1
#include "emu.h"
#include "gru.cu"

#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

struct Entry {
    std::string name;
    std::vector<size_t> sizes;   // sizeof each parameter
    std::vector<size_t> elems;   // pointee size of pointer parameters, 0 for scalars
    void (*call)(void *fn, void **args);
    void *fn;
};

template <class A>
constexpr size_t elem_size()
{
    if constexpr (std::is_pointer_v<A>)
        return sizeof(std::remove_cv_t<std::remove_pointer_t<A>>);
    else
        return 0;
}

template <class... A, size_t... I>
void invoke(void (*f)(A...), void **args, std::index_sequence<I...>)
{
    f(*static_cast<A *>(args[I])...);
}

template <class... A>
Entry make_entry(const char *name, void (*f)(A...))
{
    Entry e;
    e.name = name;
    e.sizes = {sizeof(A)...};
    e.elems = {elem_size<A>()...};
    e.fn = reinterpret_cast<void *>(f);
    e.call = [](void *fn, void **args) {
        invoke(reinterpret_cast<void (*)(A...)>(fn), args, std::index_sequence_for<A...>{});
    };
    return e;
}

#define CGRU_ENTRY(k) make_entry(#k "<float>", &k<float>), make_entry(#k "<double>", &k<double>)

std::vector<Entry> &table()
{
    static std::vector<Entry> t = {
        CGRU_ENTRY(cgru_fwd_step_after),    CGRU_ENTRY(cgru_fwd_step_before_zr),
        CGRU_ENTRY(cgru_fwd_step_before_n), CGRU_ENTRY(cgru_bwd_step_after),
        CGRU_ENTRY(cgru_bwd_step_before_1), CGRU_ENTRY(cgru_bwd_step_before_2),
        CGRU_ENTRY(cgru_fwd_persistent),
    };
    return t;
}

}  // namespace

extern "C" {

int emu_find(const char *name)
{
    auto &t = table();
    for (size_t k = 0; k < t.size(); ++k)
        if (t[k].name == name)
            return (int)k;
    return -1;
}

int emu_nparams(int k) { return (int)table()[k].sizes.size(); }
size_t emu_param_size(int k, int i) { return table()[k].sizes[i]; }
size_t emu_param_elem(int k, int i) { return table()[k].elems[i]; }

// Runs kernel k over grid x block threads. Cooperative launches run every thread of every
// block at once (so grid barriers work); others run block by block, thread by thread.
// Shared memory starts filled with 0xff bytes (NaN for float and double) to expose reads of
// values never written.
int emu_launch(int k, unsigned int grid, unsigned int block, size_t smem, int cooperative, void **args)
{
    Entry &e = table()[k];
    std::vector<std::unique_ptr<unsigned char[]>> smems;
    for (unsigned int b = 0; b < grid; ++b) {
        smems.emplace_back(new unsigned char[smem + 16]);
        std::memset(smems.back().get(), 0xff, smem + 16);
    }
    if (!cooperative) {
        for (unsigned int b = 0; b < grid; ++b)
            for (unsigned int t = 0; t < block; ++t) {
                gridDim.x = grid;
                blockDim.x = block;
                blockIdx.x = b;
                threadIdx.x = t;
                emu_block_barrier = nullptr;
                emu_smem = smems[b].get();
                e.call(e.fn, args);
            }
        return 0;
    }
    std::vector<std::unique_ptr<std::barrier<>>> bars;
    for (unsigned int b = 0; b < grid; ++b)
        bars.emplace_back(new std::barrier<>((std::ptrdiff_t)block));
    std::vector<std::thread> threads;
    threads.reserve((size_t)grid * block);
    for (unsigned int b = 0; b < grid; ++b)
        for (unsigned int t = 0; t < block; ++t)
            threads.emplace_back([&, b, t] {
                gridDim.x = grid;
                blockDim.x = block;
                blockIdx.x = b;
                threadIdx.x = t;
                emu_block_barrier = bars[b].get();
                emu_smem = smems[b].get();
                e.call(e.fn, args);
            });
    for (auto &th : threads)
        th.join();
    return 0;
}

}  // extern "C"
