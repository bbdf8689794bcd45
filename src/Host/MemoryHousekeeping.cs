namespace WhaleWall.Host;

/// <summary>Keeps the daemon's RSS to what it holds. Every <see cref="TrimEvery"/> it hands the
/// C heap's free pages back (<see cref="NativeHeap"/>). Within a second of the start-up table
/// being in the kernel, and again whenever RSS has since grown by <see cref="Growth"/> (at most
/// once per <see cref="MinGap"/>), it compacts the managed heap as well (<see cref="ManagedHeap"/>):
/// building the start-up table for 1,000 containers leaves ~25 MB of free GC memory resident
/// that the GC's own pace returns slowly if at all (README, "Where the targets stand").</summary>
public sealed class MemoryHousekeeping(Func<bool> tableReady, Func<long> rss, Action compact, Action trim, TimeProvider clock)
{
    public static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan TrimEvery = TimeSpan.FromSeconds(10);
    public const long Growth = 16L * 1024 * 1024;

    /// <summary>A compaction stops every thread for ~20 ms at 1,000 containers: at most one a minute.</summary>
    public static readonly TimeSpan MinGap = TimeSpan.FromSeconds(60);

    private long? rssAfterCompaction;
    private DateTimeOffset lastCompaction, lastTrim = DateTimeOffset.MinValue;

    public static MemoryHousekeeping ForThisProcess(Func<bool> tableReady) =>
        new(tableReady, () => Environment.WorkingSet, ManagedHeap.Compact, () => NativeHeap.Trim(), TimeProvider.System);

    /// <summary>One round; returns whether it compacted the managed heap.</summary>
    public bool Tick()
    {
        var now = clock.GetUtcNow();
        var compacting = tableReady() && (rssAfterCompaction is not { } settled
                                          || (rss() > settled + Growth && now - lastCompaction >= MinGap));
        if (compacting) compact();
        if (compacting || now - lastTrim >= TrimEvery)
        {
            trim();
            lastTrim = now;
        }
        if (compacting)
        {
            rssAfterCompaction = rss();
            lastCompaction = now;
        }
        return compacting;
    }

    /// <summary>Runs <see cref="Tick"/> every <see cref="Poll"/> until <paramref name="ct"/> is
    /// cancelled. A round that fails is logged once and the next one runs: memory housekeeping
    /// must never end the daemon.</summary>
    public async Task RunAsync(CancellationToken ct, Action<string>? warn = null)
    {
        using var timer = new PeriodicTimer(Poll, clock);
        var warned = false;
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                try { Tick(); }
                catch (Exception e) when (!warned)
                {
                    warned = true;
                    warn?.Invoke($"memory housekeeping failed ({e.Message}); it keeps trying");
                }
                catch (Exception) { }
            }
        }
        catch (OperationCanceledException) { }
    }
}

/// <summary>The GC heap's free memory back to the kernel: a blocking, compacting full collection
/// that decommits what it frees (<see cref="GCCollectionMode.Aggressive"/>).</summary>
public static class ManagedHeap
{
    public static void Compact() => GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
}
