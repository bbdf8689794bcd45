using System.Globalization;
using WhaleWall.Firewall.Kernel;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary>The daemon's own latency histograms from its /metrics, compared between two scrapes
/// so that only what happened in between counts: where an event's time goes inside the process
/// (event receipt -> kernel) against what the bench sees from outside.</summary>
public static class DaemonHistograms
{
    private static readonly (string Label, string Name, string? Kind)[] Shown =
    [
        ("Docker event time -> received (the event stream)", "whalewall_docker_event_delay_seconds", null),
        ("event received -> Applied", "whalewall_event_to_enforced_seconds", null),
        ("Docker API: network inspect (at `connect`)", "whalewall_docker_api_seconds", "network_inspect"),
        ("Docker API: container inspect (at `create`)", "whalewall_docker_api_seconds", "container_inspect"),
        ("writer: Program -> Applied", "whalewall_writer_program_seconds", null),
        ("libnftables, changes", "whalewall_nft_transaction_seconds", "changes"),
        ("libnftables, single", "whalewall_nft_transaction_seconds", "single"),
    ];

    /// <summary>The daemon's /metrics in its namespace; no samples and why, when it did not answer.</summary>
    public static async Task<(List<PromSample> Samples, string? Error)> ScrapeAsync(string ns)
    {
        try
        {
            var (status, body) = await MetricsScrape.GetAsync(Netns.Named(ns), "127.0.0.1:50000", "/metrics", TimeSpan.FromSeconds(5));
            return status == 200 ? (MetricsScrape.Parse(body), null) : ([], $"HTTP {status}");
        }
        catch (Exception e) { return ([], e.Message); }
    }

    public static string Between(List<PromSample> before, List<PromSample> after)
    {
        if (after.Count == 0) return "(metrics not scraped)";
        return string.Join("; ", Shown.Select(h => $"{h.Label} {Describe(before, after, h.Name, h.Kind)}"));
    }

    private static string Describe(List<PromSample> before, List<PromSample> after, string name, string? kind)
    {
        bool Match(PromSample x, string suffix) => x.Name == name + suffix && (kind is null || (x.Labels.GetValueOrDefault("kind") ?? x.Labels.GetValueOrDefault("call")) == kind);
        double Total(List<PromSample> s, string suffix) => s.Where(x => Match(x, suffix)).Sum(x => x.Value);
        var count = Total(after, "_count") - Total(before, "_count");
        if (count <= 0) return "none";
        var mean = (Total(after, "_sum") - Total(before, "_sum")) / count * 1000;
        var buckets = after.Where(x => Match(x, "_bucket"))
            .Select(x => (Le: x.Labels["le"], Count: x.Value - before.Where(b => Match(b, "_bucket") && b.Labels["le"] == x.Labels["le"]).Sum(b => b.Value)))
            .Select(b => (Le: b.Le == "+Inf" ? double.PositiveInfinity : double.Parse(b.Le, CultureInfo.InvariantCulture), b.Count))
            .OrderBy(b => b.Le).ToList();
        string Quantile(double q)
        {
            var le = buckets.FirstOrDefault(b => b.Count >= q * count).Le;
            return double.IsPositiveInfinity(le) ? "over the last bucket" : $"<= {le * 1000:0.#} ms";
        }
        return $"n={count:0}, mean {mean:0.0} ms, p50 {Quantile(0.5)}, p99 {Quantile(0.99)}";
    }
}
