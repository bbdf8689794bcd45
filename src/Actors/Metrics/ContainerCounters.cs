using System.Diagnostics;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Actors.Metrics;

/// <summary>Turns the kernel's per-element counters into per-container Prometheus counters at
/// scrape time. Elements come and go (a changed policy re-creates them at zero), so it keeps
/// each element's last reading and adds only the growth: the exported counters never go
/// back. Call <see cref="Update"/> from one thread at a time.</summary>
public sealed class ContainerCounters(INftables reader, string table, DaemonView view)
{
    private readonly record struct Key(string Id, bool Egress, CountedVerdict Verdict);

    private sealed class Totals
    {
        public double Packets;
        public double Bytes;
    }

    private Dictionary<string, (ulong Packets, ulong Bytes)> last = new();
    private readonly Dictionary<Key, Totals> totals = new();
    private readonly Dictionary<Key, Series> exported = new();
    private readonly object gate = new();

    /// <summary>Elements read by the last update (for the benchmark).</summary>
    public int LastElementCount { get; private set; }

    /// <summary>Lists the counted sets and updates the per-container counters.</summary>
    public void Update()
    {
        lock (gate)
        {
            var watch = Stopwatch.StartNew();
            var read = new List<ElementCounter>();
            var complete = true;
            foreach (var set in NftCounters.CountedSets)
            {
                var listing = reader.Run(NftJson.ListSet(table, set));
                if (listing.Ok) NftCounters.Read(listing.Output, read);
                else complete = false; // no table yet (or an older layout): count what there is
            }
            var snapshot = view.Current;
            Accumulate(read, snapshot, complete);
            Export(snapshot);
            WhaleWallMetrics.ScrapeKernelSeconds.Set(watch.Elapsed.TotalSeconds);
        }
    }

    private void Accumulate(List<ElementCounter> counters, DaemonView.Snapshot snapshot, bool complete)
    {
        LastElementCount = counters.Count;
        var next = new Dictionary<string, (ulong, ulong)>(counters.Count);
        foreach (var c in counters)
        {
            // An element whose owner the daemon does not know yet keeps its old reading, so
            // its packets are counted once the owner is known.
            if (!snapshot.Owners.TryGetValue(c.Container, out var id))
            {
                if (last.TryGetValue(c.Element, out var old)) next[c.Element] = old;
                continue;
            }
            var (p0, b0) = last.TryGetValue(c.Element, out var before) ? before : (0UL, 0UL);
            var dp = c.Packets >= p0 ? c.Packets - p0 : c.Packets;
            var db = c.Bytes >= b0 ? c.Bytes - b0 : c.Bytes;
            next[c.Element] = (c.Packets, c.Bytes);
            if (dp == 0 && db == 0 && totals.ContainsKey(new Key(id, c.Egress, c.Verdict))) continue;
            var key = new Key(id, c.Egress, c.Verdict);
            if (!totals.TryGetValue(key, out var t)) totals[key] = t = new Totals();
            t.Packets += dp;
            t.Bytes += db;
        }
        // a set that could not be listed keeps its elements' readings (no double counting later)
        if (!complete)
            foreach (var (element, reading) in last)
                next.TryAdd(element, reading);
        last = next;
    }

    private void Export(DaemonView.Snapshot snapshot)
    {
        foreach (var (key, t) in totals.ToList())
        {
            if (!snapshot.Containers.TryGetValue(key.Id, out var c))
            {
                // gone: its series go with it
                totals.Remove(key);
                if (exported.Remove(key, out var old)) Remove(old);
                continue;
            }
            var (id, name, image) = (MetricLabel.Bound(c.ShortId), MetricLabel.Bound(c.Name), MetricLabel.Bound(c.Image));
            var labels = new Series(
                [key.Egress ? "egress" : "ingress", key.Verdict.Label(), id, name, image,
                    MetricLabel.Bound(c.ComposeProject), MetricLabel.Bound(c.ComposeService)],
                // dockerwall: egress only, accept|drop (it has no audit mode), containers by the
                // first 18 characters of their id
                key.Egress && key.Verdict != CountedVerdict.AuditDrop
                    ? [MetricLabel.Bound(c.Id.Length > 18 ? c.Id[..18] : c.Id), name, image, key.Verdict.Label()] : null);
            if (exported.TryGetValue(key, out var previous) && !previous.SameAs(labels)) Remove(previous);
            exported[key] = labels;
            WhaleWallMetrics.ContainerPackets.WithLabels(labels.WhaleWall).IncTo(t.Packets);
            WhaleWallMetrics.ContainerBytes.WithLabels(labels.WhaleWall).IncTo(t.Bytes);
            if (labels.Dockerwall is { } dw)
            {
                WhaleWallMetrics.DockerwallPackets.WithLabels(dw).IncTo(t.Packets);
                WhaleWallMetrics.DockerwallBytes.WithLabels(dw).IncTo(t.Bytes);
            }
        }
    }

    private sealed record Series(string[] WhaleWall, string[]? Dockerwall)
    {
        public bool SameAs(Series other) =>
            WhaleWall.SequenceEqual(other.WhaleWall) && (Dockerwall ?? []).SequenceEqual(other.Dockerwall ?? []);
    }

    private static void Remove(Series series)
    {
        WhaleWallMetrics.ContainerPackets.RemoveLabelled(series.WhaleWall);
        WhaleWallMetrics.ContainerBytes.RemoveLabelled(series.WhaleWall);
        if (series.Dockerwall is not { } dw) return;
        WhaleWallMetrics.DockerwallPackets.RemoveLabelled(dw);
        WhaleWallMetrics.DockerwallBytes.RemoveLabelled(dw);
    }
}
