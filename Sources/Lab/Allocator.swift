// Memory allocation settings for the lab process.

/// Keeps freed memory in the process while a command runs instead of handing it back to
/// the system after every large temporary. The lab allocates and frees buffers of a few
/// hundred kilobytes to a few megabytes per matrix product, and per RL step activations of
/// up to gigabytes; with glibc's defaults each one is mapped (or trimmed) anew and its pages
/// faulted in and zeroed by the kernel again: a 2× slowdown of a 256³ BF16 product, and a
/// quarter of an RL step's CPU time spent in the kernel (BENCHMARKS.md). So every block comes
/// from the heap (no mmap) and the heap is never trimmed during a command;
/// `releaseFreePages` gives the free pages back when the command ends. Called once at
/// start-up by the executable.
public func configureAllocator() {
    #if os(Linux)
    _ = glibcMallopt(mmapMax, 0)          // no block is mapped on its own: all from the heap
    _ = glibcMallopt(trimThreshold, -1)   // -1: never trim the heap's top on free
    #endif
}

#if os(Linux)
// glibc's mallopt(3) is declared in <malloc.h>, which the Glibc module does not include.
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
private let trimThreshold: Int32 = -1   // M_TRIM_THRESHOLD
private let mmapMax: Int32 = -4         // M_MMAP_MAX
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
