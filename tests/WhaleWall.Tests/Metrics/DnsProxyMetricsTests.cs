using System.Collections.Immutable;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Metrics;
using WhaleWall.DnsProxy;
using WhaleWall.Host.Metrics;
using Xunit;

namespace WhaleWall.Tests.Metrics;

public sealed class DnsProxyMetricsTests
{
    private sealed class ManualTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
        public void Advance(TimeSpan by) => now += by;
    }

    private static (DnsProxyMetrics Metrics, List<string> Log, ManualTime Time, string Id, string Name) Observer()
    {
        var facts = Facts.Container("dns-" + Guid.NewGuid().ToString("N")[..8], "198.18.150.9");
        var view = new DaemonView();
        view.Apply(new ContainerNotices.StateChanged(facts.Id, facts, ContainerState.Enforced, []));
        var log = new List<string>();
        var time = new ManualTime(DateTimeOffset.Parse("2026-12-01T12:00:00Z"));
        return (new DnsProxyMetrics(view, log.Add, time), log, time, facts.Id, facts.Name);
    }

    private static double Count(string id, string name, string outcome) =>
        WhaleWallMetrics.DnsQueries.WithLabels(id, name, outcome).Value;

    [Fact]
    public void Each_answer_counts_once_per_container_and_outcome_with_the_containers_name()
    {
        var (m, _, _, id, name) = Observer();
        m.Answered(id, ProxyOutcome.Allowed, TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(4), null);
        m.Answered(id, ProxyOutcome.Allowed, TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(4), null);
        m.Answered(id, ProxyOutcome.Refused, TimeSpan.FromMilliseconds(1), TimeSpan.Zero, "x.test is not in the container's rules");
        m.Answered(id, ProxyOutcome.RateLimited, TimeSpan.Zero, TimeSpan.Zero, "query rate limit");
        Assert.Equal(2, Count(id, name, "allowed"));
        Assert.Equal(1, Count(id, name, "refused"));
        Assert.Equal(1, Count(id, name, "rate_limited"));
        Assert.Equal(0, Count(id, name, "failed"));
    }

    [Fact]
    public void The_added_latency_excludes_the_upstreams_time()
    {
        var (m, _, _, id, _) = Observer();
        var before = WhaleWallMetrics.DnsProxyAdded.Sum;
        m.Answered(id, ProxyOutcome.Allowed, TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(280), null);
        Assert.InRange(WhaleWallMetrics.DnsProxyAdded.Sum - before, 0.0199, 0.0201);
    }

    [Fact]
    public void A_forgotten_container_takes_its_series_with_it()
    {
        var (m, _, _, id, name) = Observer();
        m.Answered(id, ProxyOutcome.Allowed, TimeSpan.Zero, TimeSpan.Zero, null);
        m.Forget(id);
        Assert.DoesNotContain(WhaleWallMetrics.DnsQueries.GetAllLabelValues(), l => l[0] == id);
    }

    [Fact]
    public void Refusals_are_explained_in_the_log_escaped_and_rate_limited_with_a_count_of_the_rest()
    {
        var (m, log, time, id, name) = Observer();
        for (var i = 0; i < DnsProxyMetrics.LogBurst + 5; i++)
            m.Answered(id, ProxyOutcome.Refused, TimeSpan.Zero, TimeSpan.Zero, "evil\n[ERROR] forged.test is not in the container's rules");
        Assert.Equal(DnsProxyMetrics.LogBurst, log.Count);
        Assert.All(log, l => Assert.DoesNotContain('\n', l));
        Assert.StartsWith($"DNS proxy: {name} ({id[..12]}): refused: evil", log[0]);
        time.Advance(DnsProxyMetrics.LogWindow);
        m.Answered(id, ProxyOutcome.Failed, TimeSpan.Zero, TimeSpan.Zero, "no upstream answered");
        Assert.Contains("5 more refused or failed queries", log[^2]);
        Assert.EndsWith("failed: no upstream answered", log[^1]);
    }

    [Fact]
    public void The_report_lists_each_containers_learned_names_with_their_expiry()
    {
        var facts = Facts.Container("learner", "198.18.150.10");
        var quiet = Facts.Container("quiet", "198.18.150.11");
        var view = new DaemonView();
        view.Apply(new ContainerNotices.StateChanged(facts.Id, facts, ContainerState.Enforced, []));
        view.Apply(new ContainerNotices.StateChanged(quiet.Id, quiet, ContainerState.Enforced, []));
        var at = DateTimeOffset.Parse("2026-12-01T12:00:00Z");
        var learned = new Dictionary<string, ImmutableArray<LearnedName>> { [facts.Id] = [new("api.test.example", "198.19.0.10", at.AddSeconds(62))] };
        var json = DaemonReportFile.ToJson(view.Current, new DaemonIdentity(1, at, "n", "t", "v"), at, learned);
        var containers = json["containers"]!.AsArray();
        Assert.Empty(containers.Single(c => c!["name"]!.GetValue<string>() == "quiet")!["dns_learned"]!.AsArray());
        var entry = containers.Single(c => c!["name"]!.GetValue<string>() == "learner")!["dns_learned"]!.AsArray().Single()!;
        Assert.Equal("api.test.example", entry["name"]!.GetValue<string>());
        Assert.Equal("198.19.0.10", entry["address"]!.GetValue<string>());
        Assert.Equal(at.AddSeconds(62), DateTimeOffset.Parse(entry["expires"]!.GetValue<string>()));
        Assert.Null(DaemonReportFile.ToJson(view.Current, new DaemonIdentity(1, at, "n", "t", "v"), at)["containers"]![0]!["dns_learned"]);   // no proxy: no field
    }
}
