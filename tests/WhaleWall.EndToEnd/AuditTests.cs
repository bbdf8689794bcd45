using System.Text.Json.Nodes;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 16: audit mode and labels learned from real traffic, with real packets from
/// containers of the test dockerd to the simulated internet and to each other.</summary>
[Collection(E2eCollection.Name)]
public sealed class AuditTests(E2eFixture fx, ITestOutputHelper output)
{
    private const string Mode = "whalewall.mode";
    private const string OnlyServer1 = """
        output:
          - ips: [198.19.0.10]
            proto: tcp
            dst_ports: [80]
        """;

    private DockerHarness H => fx.Harness;

    private async Task<(TestContainer C, string Ns, string Ip)> Enforced(string hint, Dictionary<string, string> labels)
    {
        var started = await fx.StartedAsync(hint, new ContainerOptions { Labels = labels });
        await fx.WaitEnforcedAsync(started.C.Id);
        return started;
    }

    private static Dictionary<string, string> Audited(string? rules) => new(E2eLabels.OptIn(rules)) { [Mode] = "audit" };

    private JsonNode StatusOf(string id)
    {
        var (code, json, err) = fx.Daemon.Cli("status", "--json");
        Assert.True(code == 0, $"status failed ({code}): {err}");
        return JsonNode.Parse(json)!["containers"]!.AsArray().Single(c => c!["id"]!.GetValue<string>() == id)!;
    }

    private async Task<double> AuditDrops(string name)
    {
        var samples = await fx.ScrapeAsync();
        return samples.Where(s => s.Name == "whalewall_container_packets_total" && s.Labels.GetValueOrDefault("verdict") == "audit_drop"
                                  && s.Labels.GetValueOrDefault("name") == name && s.Labels.GetValueOrDefault("direction") == "egress")
            .Sum(s => s.Value);
    }

    /// <summary>`whalewall explain` against the running daemon: verdict, whether the packet gets
    /// through, exit code.</summary>
    private (string Verdict, bool Passes, int Code) Explained(string container, string ip, int port)
    {
        var (code, json, err) = fx.Daemon.Cli("explain", container, "tcp", ip, port.ToString(), "--json");
        output.WriteLine($"$ whalewall explain {container} tcp {ip} {port} -> {code}\n{json}{err}");
        var doc = JsonNode.Parse(json)!;
        return (doc["verdict"]!.GetValue<string>(), doc["passes"]!.GetValue<bool>(), code);
    }

    [Fact]
    public Task An_audited_container_keeps_its_connectivity_counts_would_be_drops_and_stays_audited_across_a_restart() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var audited = await Enforced("audited", Audited(OnlyServer1));
        var enforced = await Enforced("enforced", E2eLabels.OptIn(OnlyServer1));

        // the same rules: the enforced one is stopped where the audited one passes
        await fx.AssertTcpAllowed(audited.Ns, Server1, TcpPort, what: "(allowed by its rules)");
        await fx.AssertTcpAllowed(audited.Ns, Server2, TcpPort, what: "(audit mode: a would-be drop passes)");
        await fx.AssertTcpAllowed(audited.Ns, Server1, TcpPortOther, what: "(audit mode)");
        fx.AssertTcpDropped(enforced.Ns, Server2, TcpPort, what: "(same rules, enforce mode)");

        Assert.True(await E2eProcess.Eventually(async () => await AuditDrops(audited.C.Name) >= 2, TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(500)),
            $"would-be drops not counted: {await AuditDrops(audited.C.Name)}");
        Assert.Equal(0, await AuditDrops(enforced.C.Name));
        Assert.Equal("audit", StatusOf(audited.C.Id)["mode"]!.GetValue<string>());
        Assert.Equal("enforce", StatusOf(enforced.C.Id)["mode"]!.GetValue<string>());
        Assert.Contains("(AUDIT)", fx.Daemon.Cli("status").Out);
        Assert.Contains("audit: " + audited.C.Name + " egress: would drop tcp", File.ReadAllText(fx.Daemon.LogFile));

        // explain agrees with those packets: a would-be drop that passes, an allowed flow, a drop
        Assert.Equal(("drop", true, 1), Explained(audited.C.Name, Server2, TcpPort));
        Assert.Equal(("accept", true, 0), Explained(audited.C.Name, Server1, TcpPort));
        Assert.Equal(("drop", false, 1), Explained(enforced.C.Name, Server2, TcpPort));

        Assert.True(await fx.Daemon.StopAsync(), "the daemon should stop on SIGTERM");
        await fx.StartDaemonAgainAsync();
        await fx.WaitEnforcedAsync(audited.C.Id, TimeSpan.FromSeconds(30));
        Assert.Equal("audit", StatusOf(audited.C.Id)["mode"]!.GetValue<string>());
        await fx.AssertTcpAllowed(audited.Ns, Server2, TcpPort, what: "(still audit mode after a restart)");
        fx.AssertTcpDropped(enforced.Ns, Server2, TcpPort, what: "(still enforced after a restart)");
        await audited.C.RemoveAsync();
        await enforced.C.RemoveAsync();
    });

    [Fact]
    public Task Suggested_labels_allow_exactly_the_observed_flows_in_enforce_mode_and_block_a_new_one() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        using var extra = Probe.Tcp(H.InternetNsPath, Server2, TcpPortOther, TimeSpan.FromMilliseconds(500)) == ProbeOutcome.Connected
            ? null : H.InternetTcpServer(Server2, TcpPortOther);
        const string name = "api.suggest.test.example";
        fx.Dns.Set(name, 300, Server1);

        // a peer (unmanaged, so only the learner's side decides), a name, an address on two ports
        var db = await fx.StartedAsync("db", waitManaged: false);
        using var dbServer = await db.C.ListenTcpAsync(8080);
        var learner = await Enforced("learner", Audited(null));

        await fx.AssertTcpAllowed(learner.Ns, db.Ip, 8080, what: "(peer, audit mode)");
        var reply = DnsStub.Ask(learner.Ns, Dns, 53, name);
        Assert.True(reply is { Rcode: 0 }, $"audit mode resolves a name its rules do not have: {reply?.Rcode}");
        Assert.Equal([Server1], reply!.Addresses);
        await fx.AssertTcpAllowed(learner.Ns, Server1, TcpPort, what: "(the name's address, audit mode)");
        await fx.AssertTcpAllowed(learner.Ns, Server2, TcpPort, what: "(address, audit mode)");
        await fx.AssertTcpAllowed(learner.Ns, Server2, TcpPortOther, what: "(address, second port, audit mode)");

        string rules = "";
        var ok = await E2eProcess.Eventually(() =>
        {
            var (code, stdout, _) = fx.Daemon.Cli("suggest", learner.C.Name);
            rules = stdout;
            return code == 0 && stdout.Contains(db.C.Name) && stdout.Contains(name) && stdout.Contains("80-81");
        }, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(500));
        output.WriteLine(rules);
        Assert.True(ok, $"suggest never showed the peer, the name and both ports:\n{rules}\n{fx.Daemon.LogTail(40)}");
        Assert.Contains($"container: {db.C.Name}", rules);
        Assert.Contains("dst_ports: [8080]", rules);
        Assert.Contains($"hosts: [{name}]", rules);
        Assert.Contains("ips: [198.19.0.11]", rules);
        Assert.DoesNotContain("198.19.0.10", rules); // the name's address is named, not listed

        // the suggestion, applied to a new container in enforce mode
        var applied = await Enforced("applied", E2eLabels.OptIn(rules));
        await fx.AssertTcpAllowed(applied.Ns, db.Ip, 8080, what: "(suggested container: rule)");
        Assert.Equal(0, DnsStub.Ask(applied.Ns, Dns, 53, name)?.Rcode);
        await fx.AssertTcpAllowed(applied.Ns, Server1, TcpPort, what: "(suggested hosts: rule)");
        await fx.AssertTcpAllowed(applied.Ns, Server2, TcpPort, what: "(suggested ips: rule)");
        await fx.AssertTcpAllowed(applied.Ns, Server2, TcpPortOther, what: "(suggested ips: rule, second port)");
        await FixtureAll(
            () => fx.AssertTcpDropped(applied.Ns, Server1, TcpPortOther, what: "(a flow never seen)"),
            () => fx.AssertTcpDropped(applied.Ns, db.Ip, 8081, what: "(a peer port never seen)"));
        Assert.Equal(5, DnsStub.Ask(applied.Ns, Dns, 53, "other.suggest.test.example")?.Rcode); // REFUSED: a name never seen

        await applied.C.RemoveAsync();
        await learner.C.RemoveAsync();
        await db.C.RemoveAsync();
    });

    private static Task FixtureAll(params Action[] checks) => E2eFixture.All(checks);

    [Fact]
    public Task Unused_lists_the_rules_that_matched_nothing_from_the_kernel_counters() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var c = await Enforced("unused", E2eLabels.OptIn("""
            output:
              - ips: [198.19.0.10]
                proto: tcp
                dst_ports: [80]
              - ips: [198.19.0.12]
                proto: tcp
                dst_ports: [443]
              - ips: [198.19.0.10]
                proto: tcp
                dst_ports: [81]
                log_prefix: "unused-test "
            """));
        await fx.AssertTcpAllowed(c.Ns, Server1, TcpPort, what: "(the used rule)");
        // the report carries the facts of the running container (it is rewritten at most once a second)
        Assert.True(await E2eProcess.Eventually(() =>
            File.ReadAllText(Path.Combine(fx.Daemon.DataDir, "daemon.json")) is var r &&
            JsonNode.Parse(r)!["containers"]!.AsArray().Any(x => x!["id"]!.GetValue<string>() == c.C.Id && x["facts"]?["running"]?.GetValue<bool>() == true),
            TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200)), "the daemon never reported the container running");

        var (code, json, err) = fx.Daemon.Cli("suggest", c.C.Name, "--unused", "--json");
        output.WriteLine(json + err);
        Assert.True(code == 0, $"suggest --unused failed ({code}): {err}");
        var rules = JsonNode.Parse(json)!["rules"]!.AsArray();
        (string Path, bool Unused, bool Counted) Row(int i) =>
            (rules[i]!["path"]!.GetValue<string>(), rules[i]!["unused"]!.GetValue<bool>(), rules[i]!["counted"]!.GetValue<bool>());
        Assert.Equal(("output[0]", false, true), Row(0));
        Assert.Equal(("output[1]", true, true), Row(1));
        Assert.Equal(("output[2]", false, false), Row(2)); // through a verdict map: the kernel cannot say
        Assert.True(rules[0]!["packets"]!.GetValue<ulong>() >= 1);

        // over a period: the used rule is unused too when nothing happens meanwhile
        var (_, text, _) = fx.Daemon.Cli("suggest", c.C.Name, "--unused", "--for", "2s");
        output.WriteLine(text);
        Assert.Contains("2 of 3 rules matched nothing in the last 00:00:02", text);
        await c.C.RemoveAsync();
    });
}
