using System.Runtime.InteropServices;

namespace WhaleWall.Host;

/// <summary>Hands the C heap's free pages back to the kernel (glibc's <c>malloc_trim</c>).
/// libnftables allocates with malloc for every transaction (its cache, the JSON it parses and
/// prints), on whichever thread runs it; glibc keeps what is freed in one arena per thread and
/// returns little of it by itself. With 1,000 containers ~35 MB of the daemon's RSS was such free
/// memory (README, "Where the targets stand"); the daemon trims every 10 s
/// (<see cref="MemoryHousekeeping"/>). With a C library that has no
/// <c>malloc_trim</c> (musl), <see cref="Trim"/> does nothing and returns false.</summary>
public static class NativeHeap
{
    [DllImport("libc", EntryPoint = "malloc_trim")] private static extern int malloc_trim(nuint pad);

    private static bool unavailable;

    /// <summary>Returns whether memory went back to the kernel; false also when the C library has no malloc_trim.</summary>
    public static bool Trim()
    {
        if (unavailable) return false;
        try { return malloc_trim(0) == 1; }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            unavailable = true;
            return false;
        }
    }
}
