using WhaleWall.Host;
using Xunit;

namespace WhaleWall.Tests.Host;

public sealed class MemoryHousekeepingTests
{
    private const long Mb = 1024 * 1024;

    private sealed class Clock : TimeProvider
    {
        private DateTimeOffset now = DateTimeOffset.Parse("2026-12-02T12:00:00Z");
        public override DateTimeOffset GetUtcNow() => now;
        public void Advance(TimeSpan by) => now += by;
    }

    private sealed class Process
    {
        public bool Ready;
        public long Rss = 200 * Mb;
        public int Compactions, Trims;
        public readonly Clock Clock = new();

        public MemoryHousekeeping Housekeeping() =>
            new(() => Ready, () => Rss, () => { Compactions++; Rss -= 25 * Mb; }, () => Trims++, Clock);
    }

    [Fact]
    public void The_C_heap_is_trimmed_every_10_s_and_the_managed_heap_compacted_as_soon_as_the_table_is_ready()
    {
        var p = new Process();
        var h = p.Housekeeping();
        Assert.False(h.Tick());
        p.Clock.Advance(MemoryHousekeeping.Poll);
        Assert.False(h.Tick());
        Assert.Equal((0, 1), (p.Compactions, p.Trims)); // trimmed once in the first 10 s
        p.Clock.Advance(MemoryHousekeeping.TrimEvery);
        Assert.False(h.Tick());
        Assert.Equal((0, 2), (p.Compactions, p.Trims));

        p.Ready = true;
        p.Clock.Advance(MemoryHousekeeping.Poll);
        Assert.True(h.Tick()); // at the first poll after the table is ready; trimmed with it
        p.Clock.Advance(MemoryHousekeeping.Poll);
        Assert.False(h.Tick());
        Assert.Equal((1, 3), (p.Compactions, p.Trims));
    }

    [Fact]
    public void It_compacts_again_only_when_RSS_grew_by_the_threshold_and_a_minute_has_passed()
    {
        var p = new Process { Ready = true };
        var h = p.Housekeeping();
        Assert.True(h.Tick()); // RSS now 175 MB

        p.Rss += MemoryHousekeeping.Growth + Mb;
        p.Clock.Advance(MemoryHousekeeping.MinGap - TimeSpan.FromSeconds(1));
        Assert.False(h.Tick()); // grown, but too soon

        p.Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(h.Tick());

        p.Rss += MemoryHousekeeping.Growth - Mb;
        p.Clock.Advance(TimeSpan.FromMinutes(10));
        Assert.False(h.Tick()); // long after, but not grown enough
        Assert.Equal(2, p.Compactions);
    }

    [Fact]
    public async Task A_failing_round_is_warned_about_once_and_the_next_rounds_still_run()
    {
        var calls = 0;
        var warnings = new List<string>();
        var h = new MemoryHousekeeping(() => { Interlocked.Increment(ref calls); throw new IOException("no /proc"); },
            () => 0, () => { }, () => { }, TimeProvider.System);
        using var cts = new CancellationTokenSource(MemoryHousekeeping.Poll * 2.5);
        await h.RunAsync(cts.Token, w => { lock (warnings) warnings.Add(w); }); // returns when cancelled, never throws
        Assert.True(calls >= 2, $"{calls} rounds ran");
        Assert.Equal(["memory housekeeping failed (no /proc); it keeps trying"], warnings);
    }

    private static long RssAnon() =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("RssAnon:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;

    /// <summary>The managed heap after a burst like the start-up table's: many objects, most of
    /// them garbage, a few kept. An ordinary full collection keeps the freed memory committed;
    /// the compaction gives it back.</summary>
    [Fact]
    public void Compacting_hands_the_free_managed_heap_back_to_the_kernel()
    {
        var kept = new List<byte[]>();
        var burst = new List<byte[]>();
        for (var i = 0; i < 120_000; i++)
        {
            var a = new byte[1000];
            a[0] = 1;
            if (i % 32 == 0) kept.Add(a); else burst.Add(a);
        }
        burst.Clear();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: false);
        var before = RssAnon();
        ManagedHeap.Compact();
        var after = RssAnon();
        GC.KeepAlive(kept);
        // ~115 MB were garbage between the kept arrays; other tests running meanwhile allocate far less
        Assert.True(before - after > 40 * Mb, $"RssAnon {before / Mb} MB before the compaction, {after / Mb} MB after");
    }
}
