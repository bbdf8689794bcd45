using System.Runtime.InteropServices;
using WhaleWall.Host;
using Xunit;

namespace WhaleWall.Tests.Host;

public sealed class NativeHeapTests
{
    private static long RssAnon() =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("RssAnon:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;

    /// <summary>What libnftables leaves behind: many small blocks freed between a few still in
    /// use, so glibc cannot shrink its heap from the top and keeps the freed pages resident.</summary>
    [Fact]
    public void Trimming_hands_freed_fragmented_C_heap_memory_back_to_the_kernel()
    {
        const int block = 4096, blocks = 96 * 1024 * 1024 / block, keepEvery = 16;
        long before = 0, after = 0;
        var trimmed = false;
        // its own thread, so the blocks come from an arena of their own; nothing in it may throw
        // (an exception on a bare thread ends the test process): the asserts come after Join
        var thread = new Thread(() =>
        {
            var pointers = new IntPtr[blocks];
            var ones = Enumerable.Repeat((byte)1, block).ToArray();
            for (var i = 0; i < blocks; i++)
            {
                pointers[i] = Marshal.AllocHGlobal(block);
                Marshal.Copy(ones, 0, pointers[i], block); // resident, not just reserved
            }
            for (var i = 0; i < blocks; i++)
                if (i % keepEvery != 0) Marshal.FreeHGlobal(pointers[i]);
            before = RssAnon();
            trimmed = NativeHeap.Trim();
            after = RssAnon();
            for (var i = 0; i < blocks; i += keepEvery) Marshal.FreeHGlobal(pointers[i]);
        });
        thread.Start();
        thread.Join();
        Assert.True(trimmed, "malloc_trim released nothing");
        // ~90 MB were free in the heap's middle; other tests running meanwhile allocate far less
        Assert.True(before - after > 48L * 1024 * 1024, $"RssAnon {before / 1048576} MB before the trim, {after / 1048576} MB after");
    }
}
