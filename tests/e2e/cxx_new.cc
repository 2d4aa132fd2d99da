/*
 * C++ allocations through every kind of global operator new (see
 * check_cxx_new.py): plain, array, nothrow and over-aligned new each call
 * malloc (or aligned_alloc) from inside libstdc++, and the sample's leaf
 * must still be the function that said `new`, as it is for a C caller of
 * malloc. One site's objects are deleted again: operator delete's frees
 * must find the sampled blocks. Requests too large for any allocator
 * must still throw std::bad_alloc (or give NULL for the nothrow forms). Writes heap.pb.gz and, through the
 * handler API, the debug=1 text form heap.txt into the directory given;
 * prints "truth SITE COUNT BYTES" per site.
 */
#include <heapprof.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

namespace {

constexpr int kCount = 3000;

struct Order {
    char data[200];
};

struct alignas(64) Line {
    char data[256];
};

void *volatile keep[6][kCount];

__attribute__((noinline)) void
new_site(int i)
{
    keep[0][i] = new Order();
}

__attribute__((noinline)) void
new_array_site(int i)
{
    keep[1][i] = new char[300];
}

__attribute__((noinline)) void
nothrow_site(int i)
{
    keep[2][i] = new (std::nothrow) Order();
}

__attribute__((noinline)) void
aligned_site(int i)
{
    keep[3][i] = new Line();
}

__attribute__((noinline)) void
deleted_site(int i)
{
    keep[4][i] = new Order();
}

__attribute__((noinline)) void
deleted_aligned_site(int i)
{
    keep[5][i] = new Line();
}

/* Requests no allocator can meet: the throwing forms must throw
 * std::bad_alloc and the nothrow ones return NULL, as without heapprof. */
bool
failures_keep_their_semantics()
{
    const size_t huge = SIZE_MAX / 4;
    bool ok = true;
    try {
        keep[0][0] = new char[huge];
        ok = false;
    } catch (const std::bad_alloc &) {
    }
    try {
        keep[0][0] = ::operator new(huge, std::align_val_t(64));
        ok = false;
    } catch (const std::bad_alloc &) {
    }
    if (::operator new(huge, std::nothrow) != nullptr ||
        ::operator new[](huge, std::align_val_t(128), std::nothrow) != nullptr)
        ok = false;
    return ok;
}

bool
write_text(const std::string &path)
{
    heapprof_http_request req;
    std::memset(&req, 0, sizeof req);
    req.method = "GET";
    req.method_len = 3;
    req.path = "/debug/pprof/heap";
    req.path_len = std::strlen(req.path);
    req.query = "debug=1";
    req.query_len = 7;
    heapprof_http_response resp;
    std::memset(&resp, 0, sizeof resp);
    if (heapprof_http_handle(&req, &resp) != 0 || resp.status != 200)
        return false;
    FILE *f = std::fopen(path.c_str(), "w");
    bool ok = f != nullptr &&
              std::fwrite(resp.body, 1, resp.body_len, f) == resp.body_len;
    if (f != nullptr && std::fclose(f) != 0)
        ok = false;
    heapprof_http_response_free(&resp);
    return ok;
}

} // namespace

int
main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < kCount; i++) {
        new_site(i);
        new_array_site(i);
        nothrow_site(i);
        aligned_site(i);
        deleted_site(i);
        deleted_aligned_site(i);
    }
    for (int i = 0; i < kCount; i++) {
        delete static_cast<Order *>(keep[4][i]);
        delete static_cast<Line *>(keep[5][i]);
    }
    if (!failures_keep_their_semantics()) {
        std::fprintf(stderr, "operator new failed to fail as C++ says\n");
        return 1;
    }
    std::string dir = argv[1];
    int rc = heapprof_write_path((dir + "/heap.pb.gz").c_str(),
                                 HEAPPROF_PROFILE_HEAP);
    if (rc != 0 || !write_text(dir + "/heap.txt")) {
        std::fprintf(stderr, "writing the profiles failed (%d)\n", rc);
        return 1;
    }
    std::printf("truth new_site %d %zu\n", kCount, kCount * sizeof(Order));
    std::printf("truth new_array_site %d %d\n", kCount, kCount * 300);
    std::printf("truth nothrow_site %d %zu\n", kCount, kCount * sizeof(Order));
    std::printf("truth aligned_site %d %zu\n", kCount, kCount * sizeof(Line));
    std::printf("truth deleted_site %d %zu\n", kCount, kCount * sizeof(Order));
    std::printf("truth deleted_aligned_site %d %zu\n", kCount,
                kCount * sizeof(Line));
    return 0;
}
