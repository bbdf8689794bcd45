using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 5: hostname rules against a real DNS server (in the simulated internet) with
/// 1 s TTLs; the daemon runs with a minimum TTL of 1 s and a grace of 2 s.</summary>
[Collection(E2eCollection.Name)]
public sealed class HostnameTests(E2eFixture fx, ITestOutputHelper output)
{
    private static readonly TimeSpan TtlPlusGrace = TimeSpan.FromSeconds(3);
    private DockerHarness H => fx.Harness;

    private Task<(TestContainer C, string Ns, string Ip)> Started(string hint, string rules, string? network = null) =>
        fx.StartedAsync(hint, new ContainerOptions { Labels = E2eLabels.OptIn(rules), Network = network });

    private static string HostsRule(string name) => $"""
        output:
          - hosts: [{name}]
            proto: tcp
            dst_ports: [80]
        """;

    private async Task AssertEventuallyDropped(string ns, string ip, int port, TimeSpan within, string what)
    {
        var dropped = await E2eProcess.Eventually(() => Probe.Tcp(ns, Guard(ip), port, TimeSpan.FromSeconds(1)) == ProbeOutcome.TimedOut,
            within, TimeSpan.FromMilliseconds(200));
        Assert.True(dropped, $"expected tcp -> {ip}:{port} to be dropped within {within.TotalSeconds} s {what}\n{fx.TableText()}");
    }

    [Fact]
    public Task Name_is_reachable_other_names_are_not_and_a_moved_name_is_followed() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        fx.Dns.Set("api.test.example", 1, Server1);
        fx.Dns.Set("other.test.example", 1, Server2);
        var c = await Started("hosts", HostsRule("api.test.example"));
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort, what: "(api.test.example)");
        fx.AssertTcpDropped(c.Ns, Server2, TcpPort, what: "(other.test.example is not named)");

        // status shows the name, its address with expiry, and who uses it
        var shown = await E2eProcess.Eventually(() =>
        {
            var (code, json, _) = fx.Daemon.Cli("status", "--json");
            var names = code == 0 ? System.Text.Json.Nodes.JsonNode.Parse(json)?["hostnames"]?.AsArray() : null;
            var api = names?.FirstOrDefault(n => n?["name"]?.GetValue<string>() == "api.test.example");
            return api is not null &&
                   api["addresses"]!.AsArray().Any(a => a!["address"]!.GetValue<string>() == Server1 && a["expires"] is not null) &&
                   api["containers"]!.AsArray().Any(x => x!.GetValue<string>() == c.C.Name);
        }, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(500));
        Assert.True(shown, "whalewall status --json lists api.test.example with its address, expiry and container\n" + fx.Daemon.Cli("status").Out);

        fx.Dns.Set("api.test.example", 1, Server2);
        var moved = DateTime.UtcNow;
        await fx.AssertTcpAllowed(c.Ns, Server2, TcpPort, what: "(the name's new address)");
        output.WriteLine($"new address usable after {(DateTime.UtcNow - moved).TotalMilliseconds:F0} ms");
        await AssertEventuallyDropped(c.Ns, Server1, TcpPort, TtlPlusGrace + TimeSpan.FromSeconds(4), "(old address after TTL + grace)");
        output.WriteLine($"old address dropped after {(DateTime.UtcNow - moved).TotalMilliseconds:F0} ms");
        await c.C.RemoveAsync();
    });

    /// <summary>Issue 12 (1): an answer that never changes must keep renewing the kernel's element
    /// timeouts; it used to be blocked after TTL + grace because the container actor did not
    /// send an unchanged answer to the writer.</summary>
    [Fact]
    public Task A_name_whose_answer_never_changes_stays_reachable_long_past_ttl_plus_grace() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        fx.Dns.Set("stable.test.example", 1, Server1);
        var c = await Started("stable", HostsRule("stable.test.example"));
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort, what: "(stable.test.example)");
        var until = DateTime.UtcNow + 3 * TtlPlusGrace + TimeSpan.FromSeconds(2);
        var (probes, failures) = (0, new List<string>());
        while (DateTime.UtcNow < until)
        {
            var outcome = Probe.Tcp(c.Ns, Guard(Server1), TcpPort, TimeSpan.FromSeconds(1));
            probes++;
            if (outcome != ProbeOutcome.Connected) failures.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {outcome}");
            await Task.Delay(250);
        }
        output.WriteLine($"{probes} connections over {3 * TtlPlusGrace.TotalSeconds + 2:0} s, {failures.Count} failed");
        Assert.True(failures.Count == 0, $"the unchanged name stopped working: {string.Join(", ", failures)}\n{fx.TableText()}");
        fx.AssertTcpDropped(c.Ns, Server2, TcpPort, what: "(still only the name's address)");
        await c.C.RemoveAsync();
    });

    [Fact]
    public Task A_name_shared_by_two_containers_is_resolved_once() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        fx.Dns.Set("shared.test.example", 1, Server1);
        var a = await Started("share-a", HostsRule("shared.test.example"));
        var b = await Started("share-b", HostsRule("shared.test.example"));
        await fx.AssertTcpAllowed(a.Ns, Server1, TcpPort);
        await fx.AssertTcpAllowed(b.Ns, Server1, TcpPort);
        var log = fx.Daemon.LogTail(2000);
        Assert.Equal(1, log.Split('\n').Count(l => l.Contains("resolving shared.test.example")));
        // two containers, one resolver: about one A+AAAA pair per half TTL, not two
        var before = fx.Dns.QueriesFor("shared.test.example");
        await Task.Delay(TimeSpan.FromSeconds(3));
        var perSecond = (fx.Dns.QueriesFor("shared.test.example") - before) / 3.0;
        output.WriteLine($"{perSecond:F1} queries/s for the shared name");
        Assert.InRange(perSecond, 1, 6);
        await a.C.RemoveAsync();
        await b.C.RemoveAsync();
    });

    [Fact]
    public Task During_a_dns_outage_the_last_addresses_stay_until_their_grace_ends() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        fx.Dns.Set("flaky.test.example", 1, Server1);
        var c = await Started("outage", HostsRule("flaky.test.example"));
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort);
        fx.Dns.Fail("flaky.test.example");
        var failed = DateTime.UtcNow;
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort, what: "(within the grace after the outage began)");
        await AssertEventuallyDropped(c.Ns, Server1, TcpPort, TtlPlusGrace + TimeSpan.FromSeconds(4), "(grace over)");
        Assert.True(DateTime.UtcNow - failed >= TimeSpan.FromSeconds(1), "addresses must outlive the outage's start by at least the TTL");
        Assert.Contains("DNS for flaky.test.example failed", fx.Daemon.LogTail(2000));
        await c.C.RemoveAsync();
    });

    [Fact]
    public Task Ipv6_addresses_come_from_aaaa_records() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var network = fx.Name("dns6");
        await H.CreateDualStackNetworkAsync(network, "198.18.91.0/24", "2001:db8:91::/64");
        using var v6 = H.InternetTcpServer(Server1v6, TcpPort);
        fx.Dns.Set("v6.test.example", 1, Server1v6);
        var c = await Started("aaaa", HostsRule("v6.test.example"), network);
        await fx.AssertTcpAllowed(c.Ns, Server1v6, TcpPort, what: "(AAAA)");
        fx.AssertTcpDropped(c.Ns, Server1, TcpPort, what: "(no A record)");
        await c.C.RemoveAsync();
    });
}
