// Memory allocation settings for the lab process.

/// Keeps freed memory in the process instead of handing it back to the system after every
/// large temporary. The lab allocates and frees buffers of a few hundred kilobytes to a few
/// megabytes per matrix product; with glibc's defaults each one is mapped (or trimmed) anew
/// and its pages faulted in again, which measured as a 2× slowdown of a 256³ BF16 product
/// (BENCHMARKS.md). Called once at start-up by the executable.
public func configureAllocator() {
    #if os(Linux)
    _ = glibcMallopt(mmapThreshold, 256 << 20)  // serve blocks up to 256 MiB from the heap
    _ = glibcMallopt(trimThreshold, 1 << 30)    // trim the heap only past 1 GiB free
    #endif
}

#if os(Linux)
// glibc's mallopt(3) is declared in <malloc.h>, which the Glibc module does not include.
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
private let trimThreshold: Int32 = -1   // M_TRIM_THRESHOLD
private let mmapThreshold: Int32 = -3   // M_MMAP_THRESHOLD
#endif

/// Gives the pages of freed blocks back to the system, keeping the heap (glibc's
/// malloc_trim(0), which releases free pages inside the heap, not only at its top). Called
/// when a command ends: what it freed then counts as available to the next command's memory
/// check, since MemAvailable does not see memory that is free inside a process. Within a
/// command the memory stays kept, as above.
public func releaseFreePages() {
    #if os(Linux)
    _ = glibcMallocTrim(0)
    #endif
}

#if os(Linux)
@_silgen_name("malloc_trim") private func glibcMallocTrim(_ pad: Int) -> Int32
#endif
