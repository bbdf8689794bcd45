using System.Text.RegularExpressions;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 7: /metrics and /healthz of the daemon under test, scraped from inside the
/// harness' host namespace, after real traffic. Needs root and Docker (the e2e harness).</summary>
[Collection(E2eCollection.Name)]
public sealed class MetricsTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;
    private const string Packets = "whalewall_container_packets_total";
    private const string Bytes = "whalewall_container_bytes_total";

    private async Task<(TestContainer C, string Ns, string Ip)> Started(string hint, Dictionary<string, string> labels)
    {
        var c = await H.RunContainerAsync(fx.Name(hint), new ContainerOptions { Labels = labels });
        var ip = await c.IpAsync();
        await fx.Table.WaitManaged(ip);
        return (c, await c.NsPathAsync(), ip);
    }

    private static double Count(List<PromSample> s, string metric, TestContainer c, string direction, string verdict) =>
        s.Value(metric, ("name", c.Name), ("direction", direction), ("verdict", verdict));

    [Fact]
    public Task Healthz_is_200_when_the_table_is_in_place_and_docker_events_are_connected() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var ok = await E2eProcess.Eventually(async () => (await fx.HttpGetAsync("/healthz")).Status == 200,
            TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(100));
        var (status, body) = await fx.HttpGetAsync("/healthz");
        Assert.True(ok, $"/healthz answered {status}: {body}");
        var s = await fx.ScrapeAsync();
        Assert.Equal(1, s.Value("whalewall_table_ready"));
        Assert.Equal(1, s.Value("whalewall_docker_stream_connected"));
    });

    [Fact]
    public Task Docker_API_calls_a_new_container_needs_are_timed_by_call() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        double Calls(List<PromSample> s, string call) => s.Value("whalewall_docker_api_seconds_count", ("call", call));
        var before = await fx.ScrapeAsync();
        var c = await Started("mapi", E2eLabels.OptIn());
        var after = await fx.ScrapeAsync();
        // the container's inspect at `create`, and its endpoint's address from the network at `connect`
        Assert.True(Calls(after, "container_inspect") > Calls(before, "container_inspect"), "no container inspect timed");
        Assert.True(Calls(after, "network_inspect") > Calls(before, "network_inspect"), "no network inspect timed");
        Assert.True(after.Value("whalewall_docker_api_seconds_sum", ("call", "container_inspect")) > 0);
        await c.C.RemoveAsync();
    });

    [Fact]
    public Task Kernel_counters_move_for_the_right_container_and_direction_and_not_for_the_other() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var b = await Started("mb", E2eLabels.OptIn().Compose("metrics", "sink"));
        var a = await Started("ma", E2eLabels.OptIn($"""
            output:
              - ips: [{Server1}]
                proto: tcp
                dst_ports: [{TcpPort}]
              - container: {b.C.Name}
                proto: tcp
                dst_ports: [7000]
            """).Compose("metrics", "source"));
        // both paths open (A -> B is refused by B's closed port: the SYN got through)
        await fx.AssertTcpAllowed(a.Ns, Server1, TcpPort);
        Assert.True(await E2eProcess.Eventually(() => Probe.Tcp(a.Ns, Guard(b.Ip), 7000, TimeSpan.FromSeconds(1)) != ProbeOutcome.TimedOut,
            E2eFixture.AllowedWithin, TimeSpan.FromMilliseconds(200)), "A -> B:7000 never got through");

        var s0 = await fx.ScrapeAsync();
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.Ns, Guard(Server1), TcpPort, TimeSpan.FromSeconds(2)));
        Assert.NotEqual(ProbeOutcome.TimedOut, Probe.Tcp(a.Ns, Guard(b.Ip), 7000, TimeSpan.FromSeconds(2)));
        fx.AssertTcpDropped(a.Ns, Server1, TcpPortOther, what: "(A, port not allowed)");
        var s1 = await fx.ScrapeAsync();

        Assert.True(Count(s1, Packets, a.C, "egress", "accept") > Count(s0, Packets, a.C, "egress", "accept"), "A egress accepted did not move");
        Assert.True(Count(s1, Bytes, a.C, "egress", "accept") > Count(s0, Bytes, a.C, "egress", "accept"), "A egress accepted bytes did not move");
        Assert.True(Count(s1, Packets, a.C, "egress", "drop") > Count(s0, Packets, a.C, "egress", "drop"), "A egress dropped did not move");
        Assert.True(Count(s1, Packets, b.C, "ingress", "accept") > Count(s0, Packets, b.C, "ingress", "accept"), "B ingress accepted did not move");
        // replies are established traffic, accepted before the lookups: nothing else moves
        Assert.Equal(Count(s0, Packets, a.C, "ingress", "accept"), Count(s1, Packets, a.C, "ingress", "accept"));
        Assert.Equal(Count(s0, Packets, a.C, "ingress", "drop"), Count(s1, Packets, a.C, "ingress", "drop"));
        Assert.Equal(Count(s0, Packets, b.C, "egress", "accept"), Count(s1, Packets, b.C, "egress", "accept"));
        Assert.Equal(Count(s0, Packets, b.C, "egress", "drop"), Count(s1, Packets, b.C, "egress", "drop"));
        Assert.Equal(Count(s0, Packets, b.C, "ingress", "drop"), Count(s1, Packets, b.C, "ingress", "drop"));

        // now B tries and is dropped: B's egress drops move, A's do not
        fx.AssertTcpDropped(b.Ns, Server1, TcpPort, what: "(B has no rules)");
        var s2 = await fx.ScrapeAsync();
        Assert.True(Count(s2, Packets, b.C, "egress", "drop") > Count(s1, Packets, b.C, "egress", "drop"), "B egress dropped did not move");
        Assert.Equal(Count(s1, Packets, a.C, "egress", "drop"), Count(s2, Packets, a.C, "egress", "drop"));
        Assert.Equal(Count(s1, Packets, a.C, "egress", "accept"), Count(s2, Packets, a.C, "egress", "accept"));

        // labels: id, image, compose; and dockerwall's names for the same egress counts
        var series = s2.First(x => x.Name == Packets && x.Labels["name"] == a.C.Name && x.Labels["verdict"] == "drop" && x.Labels["direction"] == "egress");
        Assert.Equal(a.C.Id[..12], series.Labels["id"]);
        Assert.Equal(H.Image, series.Labels["image"]);
        Assert.Equal("metrics", series.Labels["compose_project"]);
        Assert.Equal("source", series.Labels["compose_service"]);
        Assert.Equal(Count(s2, Packets, a.C, "egress", "drop"), s2.Value("dockerwall_container_packets", ("name", a.C.Name), ("action", "drop")));
        Assert.Equal(Count(s2, Packets, a.C, "egress", "accept"), s2.Value("dockerwall_container_packets", ("name", a.C.Name), ("action", "accept")));
        output.WriteLine(string.Join("\n", (await fx.HttpGetAsync("/metrics")).Body.Split('\n')
            .Where(l => l.StartsWith("whalewall_container_") && (l.Contains(a.C.Name) || l.Contains(b.C.Name)))));

        await a.C.RemoveAsync();
        await b.C.RemoveAsync();
        // a removed container's series go away
        Assert.True(await E2eProcess.Eventually(async () => (await fx.ScrapeAsync()).All(x => !x.Labels.TryGetValue("name", out var n) || n != a.C.Name),
            TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200)), "series of a removed container stayed");
    });

    [Fact]
    public Task Invalid_labels_count_as_label_errors_and_a_fail_closed_container() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var before = await fx.ScrapeAsync();
        var bad = await Started("mbad", E2eLabels.OptIn("output:\n  - ips: [nope]\n"));
        var ok = await E2eProcess.Eventually(async () =>
        {
            var s = await fx.ScrapeAsync();
            return s.Value("whalewall_label_errors_total") > before.Value("whalewall_label_errors_total") &&
                   s.Value("whalewall_containers", ("state", "fail_closed")) >= 1;
        }, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200));
        Assert.True(ok, "label error / fail_closed state not counted");
        await bad.C.RemoveAsync();
    });

    [Fact]
    public Task Every_metric_in_the_dashboard_is_exported() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        // something to count, so the per-container families have series
        var c = await Started("mdash", E2eLabels.OptIn());
        fx.AssertTcpDropped(c.Ns, Server1, TcpPort);
        var body = (await fx.HttpGetAsync("/metrics")).Body;
        var exported = MetricsScrape.Parse(body).Select(s => s.Name).ToHashSet();
        output.WriteLine(string.Join("\n", body.Split('\n').Where(l => l.Contains("whalewall_") || l.StartsWith("dockerwall_") || l.StartsWith("# TYPE dockerwall"))));

        var expressions = GrafanaDashboard.AllQueries();
        Assert.True(expressions.Count >= 8, $"dashboard has only {expressions.Count} queries");
        var missing = new List<string>();
        foreach (var expr in expressions)
        {
            var names = Regex.Matches(expr, @"\b(?:whalewall|dockerwall)_[a-z0-9_]+\b").Select(m => m.Value).ToList();
            Assert.True(names.Count > 0, $"query uses no WhaleWall metric: {expr}");
            missing.AddRange(names.Where(n => !exported.Contains(n)).Select(n => $"{n} (in {expr})"));
        }
        Assert.True(missing.Count == 0, "not exported:\n" + string.Join("\n", missing));
        await c.C.RemoveAsync();
    });
}
