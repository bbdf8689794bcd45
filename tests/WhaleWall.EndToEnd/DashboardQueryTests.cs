using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 16: a real Prometheus (Debian's package, started by the test in the harness'
/// host namespace) scrapes the daemon under test every second, and every query of
/// deploy/grafana/whalewall.json, with its template variables substituted the way Grafana does,
/// returns at least one series through Prometheus' HTTP API. Needs root, Docker (the e2e
/// harness) and /usr/bin/prometheus (scripts/install-deps.sh).</summary>
[Collection(E2eCollection.Name)]
public sealed class DashboardQueryTests(E2eFixture fx, ITestOutputHelper output)
{
    /// <summary>How long the queries may take to all return series once the traffic is made.</summary>
    private static readonly TimeSpan SeriesWithin = TimeSpan.FromSeconds(45);

    [Fact]
    public Task Every_dashboard_query_returns_series_from_a_real_prometheus() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        await using var prometheus = await PrometheusServer.StartAsync(fx.Harness.HostNsPath, fx.Harness.Dir, E2eFixture.MetricsAddress);
        output.WriteLine($"prometheus {prometheus.Address} (pid {prometheus.Pid}) scraping {E2eFixture.MetricsAddress}");
        var containers = new List<TestContainer>();
        try
        {
            await MakeTraffic(containers);
            await AssertEveryQueryHasSeries(prometheus);
        }
        catch
        {
            output.WriteLine("---- prometheus stderr (tail) ----");
            output.WriteLine(E2eProcess.Tail(prometheus.StderrFile, 40));
            throw;
        }
        finally
        {
            foreach (var c in containers) await c.RemoveAsync();
        }
    });

    /// <summary>What gives every panel a series: an enforced container (compose labels) with an
    /// accepted and a dropped flow and a DNS query through the proxy, a container with invalid
    /// labels (label errors, fail_closed), and a container in audit mode that tries a connection
    /// its rules do not allow (its would-be drop; this test does not judge the outcome).</summary>
    private async Task MakeTraffic(List<TestContainer> containers)
    {
        const string name = "www.dash.test.example";
        fx.Dns.Set(name, 60, Server2);
        var labels = E2eLabels.OptIn($"""
            output:
              - ips: [{Server1}]
                proto: tcp
                dst_ports: [{TcpPort}]
              - hosts: ["{name}"]
                proto: tcp
                dst_ports: [{TcpPort}]
            """).Compose("dash", "web");
        var enforced = await fx.StartedAsync("dash", new ContainerOptions { Labels = labels });
        containers.Add(enforced.C);
        await fx.WaitEnforcedAsync(enforced.C.Id);
        await fx.AssertTcpAllowed(enforced.Ns, Server1, TcpPort);
        fx.AssertTcpDropped(enforced.Ns, Server1, TcpPortOther, what: "(port not allowed)");
        var answer = DnsStub.Ask(enforced.Ns, Dns, 53, name);
        Assert.True(answer is { Rcode: 0 } && answer.Addresses.Contains(Server2), $"no answer for {name} through the proxy: {answer}");
        await fx.AssertTcpAllowed(enforced.Ns, Server2, TcpPort, what: "(the proxy's answer)");

        var bad = await fx.StartedAsync("dashbad", new ContainerOptions { Labels = E2eLabels.OptIn("output:\n  - ips: [nope]\n") });
        containers.Add(bad.C);

        var auditLabels = E2eLabels.OptIn($"""
            output:
              - ips: [{Server1}]
                proto: tcp
                dst_ports: [{TcpPort}]
            """).Compose("dash", "audited");
        auditLabels["whalewall.mode"] = "audit";
        var audited = await fx.StartedAsync("dashaudit", new ContainerOptions { Labels = auditLabels });
        containers.Add(audited.C);
        var outcome = Probe.Tcp(audited.Ns, Guard(Server1), TcpPortOther, TimeSpan.FromSeconds(2));
        output.WriteLine($"audited container -> {Server1}:{TcpPortOther} (not allowed by its rules): {outcome}");
    }

    private async Task AssertEveryQueryHasSeries(PrometheusServer prometheus)
    {
        var targets = GrafanaDashboard.Targets();
        Assert.True(targets.Count >= 10, $"dashboard has only {targets.Count} targets");
        var variables = GrafanaDashboard.Variables();
        var rateInterval = GrafanaDashboard.RateInterval(PrometheusServer.ScrapeInterval);

        List<string> empty = [];
        List<string> report = [];
        var ok = await E2eProcess.Eventually(async () =>
        {
            empty = [];
            report = [];
            var values = new Dictionary<string, string> { ["__rate_interval"] = rateInterval, ["__interval"] = $"{PrometheusServer.ScrapeInterval.TotalSeconds:F0}s" };
            // the variables in their order, each "All", as Grafana resolves them on load
            foreach (var v in variables)
            {
                var (selector, label) = GrafanaDashboard.LabelValues(GrafanaDashboard.Substitute(v.Query, values));
                var found = await prometheus.LabelValuesAsync(label, selector, TimeSpan.FromMinutes(5));
                report.Add($"${v.Name}: label_values({selector}, {label}) -> [{string.Join(", ", found)}]");
                if (found.Count == 0) empty.Add($"variable ${v.Name}: label_values({selector}, {label})");
                values[v.Name] = GrafanaDashboard.AllOf(found, v.AllValue);
            }
            foreach (var t in targets)
            {
                var expr = GrafanaDashboard.Substitute(t.Expr, values);
                Assert.DoesNotContain("$", expr);
                var result = await prometheus.QueryAsync(expr);
                report.Add($"[{t.Panel} / {t.RefId}] {expr} -> {result.Error ?? $"{result.Series.Count} series" + (result.Series.Count > 0 ? $", first = {result.Series[0].Value}" : "")}");
                if (result.Error is not null || result.Series.Count == 0)
                    empty.Add($"[{t.Panel} / {t.RefId}] {expr}" + (result.Error is null ? "" : $" (error: {result.Error})"));
            }
            return empty.Count == 0;
        }, SeriesWithin, TimeSpan.FromSeconds(2));
        foreach (var line in report) output.WriteLine(line);
        Assert.True(ok, $"{empty.Count} of {targets.Count} dashboard queries (and variables) returned no series within {SeriesWithin.TotalSeconds:F0} s:\n" +
                        string.Join("\n", empty));
    }
}
