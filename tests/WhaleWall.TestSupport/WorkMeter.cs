using System.Diagnostics;
using System.Runtime.InteropServices;

namespace WhaleWall.TestSupport;

/// <summary>What one piece of work cost the calling thread: CPU time (unlike wall time, it
/// does not grow when other processes load the machine), wall time and bytes allocated.
/// For hostile-input tests that bound time and memory per case.</summary>
public readonly record struct WorkCost(TimeSpan Cpu, TimeSpan Wall, long Allocated)
{
    public override string ToString() =>
        $"{Cpu.TotalMilliseconds:F1} ms CPU, {Wall.TotalMilliseconds:F1} ms wall, {Allocated / 1024.0:F0} KiB allocated";
}

public static class WorkMeter
{
    /// <summary>CPU bound for one hostile case once the code is hot. The design aims at well
    /// under 100 ms (measured 1-50 ms per shape on an idle core); thread CPU time still grows
    /// a few times when other processes and test classes share the cores (SMT, caches, a VM's
    /// steal): a 33 ms case was measured at 380 ms during a full CI run on 2 cores, so the bound
    /// leaves that room. Before the fix the same shapes took seconds or never ended.</summary>
    public static readonly TimeSpan HotCpuBound = TimeSpan.FromMilliseconds(750);

    /// <summary>CPU bound for a first run, JIT compilation included.</summary>
    public static readonly TimeSpan ColdCpuBound = TimeSpan.FromSeconds(2);

    public static (T Result, WorkCost Cost) Measure<T>(Func<T> work)
    {
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var cpu = ThreadCpu();
        var wall = Stopwatch.StartNew();
        var result = work();
        wall.Stop();
        var cost = new WorkCost(ThreadCpu() - cpu, wall.Elapsed, GC.GetAllocatedBytesForCurrentThread() - allocated);
        return (result, cost);
    }

    /// <summary>The cost of <paramref name="work"/> once its code is hot (the JIT optimises a
    /// method after ~30 calls, in the background): the cheapest of <paramref name="runs"/> runs
    /// after <paramref name="warmups"/> warm-up runs and a pause for the JIT. What a daemon
    /// pays for a label it sees at every event.</summary>
    public static WorkCost Hot<T>(Func<T> work, int runs = 5, int warmups = 12)
    {
        for (var i = 0; i < warmups; i++) work();
        Thread.Sleep(200); // let the background JIT install the optimised code
        var costs = Enumerable.Range(0, runs).Select(_ => Measure(work).Cost).ToList();
        return costs.MinBy(c => c.Cpu);
    }

    /// <summary>CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID).</summary>
    public static TimeSpan ThreadCpu()
    {
        if (clock_gettime(ClockThreadCpuTime, out var ts) != 0) throw new InvalidOperationException("clock_gettime failed");
        return TimeSpan.FromTicks(ts.Seconds * TimeSpan.TicksPerSecond + ts.Nanoseconds / 100);
    }

    private const int ClockThreadCpuTime = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int clock_gettime(int clock, out Timespec ts);
}
