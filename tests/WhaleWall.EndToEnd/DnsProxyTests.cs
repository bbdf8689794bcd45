using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 15: the DNS proxy in the running daemon, with real packets from containers of
/// the test dockerd and the test DNS server in the simulated internet as the upstream. The
/// containers ask the test DNS server's address (or another one): the table redirects every
/// port-53 packet of a filtered container to the proxy.
/// <para>Wildcard rules are used where the test must show that the PROXY opened an address: the
/// daemon never resolves wildcards itself (it still keeps exact names resolved).</para></summary>
[Collection(E2eCollection.Name)]
public sealed class DnsProxyTests(E2eFixture fx, ITestOutputHelper output)
{
    private const int Refused = 5, NxDomain = 3;
    private static readonly string[] Rotation = [Server1, Server2, Client1, Client2];

    private DockerHarness H => fx.Harness;

    /// <summary>A container enforced by the daemon (its report says so, not only a managed
    /// element: a container just removed may have held the same address until the daemon saw it go).</summary>
    private async Task<(TestContainer C, string Ns, string Ip)> Started(string hint, string rules, Dictionary<string, string>? extra = null)
    {
        var labels = E2eLabels.OptIn(rules);
        foreach (var (k, v) in extra ?? []) labels[k] = v;
        var started = await fx.StartedAsync(hint, new ContainerOptions { Labels = labels });
        await fx.WaitEnforcedAsync(started.C.Id);
        return started;
    }

    private static string HostsRule(params string[] names) => $"""
        output:
          - hosts: [{string.Join(", ", names.Select(n => $"\"{n}\""))}]
            proto: tcp
            dst_ports: [80]
        """;

    /// <summary>TCP servers on the two client addresses too, so four addresses can be rotated.</summary>
    private void ServersOnClientAddresses()
    {
        foreach (var ip in new[] { Client1, Client2 })
            if (Probe.Tcp(H.InternetNsPath, ip, TcpPort, TimeSpan.FromMilliseconds(500)) != ProbeOutcome.Connected)
                H.InternetTcpServer(ip, TcpPort);
    }

    /// <summary>The test DNS server answers <paramref name="name"/>'s A queries with the next
    /// address of <see cref="Rotation"/> each time (what a CDN does to different clients).</summary>
    private IDisposable Rotate(string name)
    {
        var next = 0;
        var gate = new object();
        fx.Dns.Set(name, 1, Rotation[0]);
        fx.Dns.BeforeAnswer = (query, _, _) =>
        {
            var (asked, end) = TestDnsServer.ReadName(query, 12);
            if (asked.Equals(name, StringComparison.OrdinalIgnoreCase) && query[end + 1] == 1)
                lock (gate) fx.Dns.Set(name, 1, Rotation[++next % Rotation.Length]);
            return Task.CompletedTask;
        };
        return new Undo(() => fx.Dns.BeforeAnswer = null);
    }

    private sealed class Undo(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    private static DnsStub.Reply Ask(string ns, string name, string server = Dns, bool tcp = false) =>
        DnsStub.Ask(ns, server, 53, name, tcp) ?? throw new Xunit.Sdk.XunitException($"no DNS answer for {name} from {server} ({(tcp ? "tcp" : "udp")})");

    [Fact]
    public Task A_name_that_answers_a_different_address_to_every_query_works_from_the_container() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        ServersOnClientAddresses();
        const string name = "www.rot.test.example";
        using var rotation = Rotate(name);
        var c = await Started("rotating", HostsRule("*.rot.test.example"));
        foreach (var ip in Rotation) fx.AssertTcpDropped(c.Ns, ip, TcpPort, what: "(nothing looked up yet)");

        var seen = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            var reply = Ask(c.Ns, name);
            Assert.Equal(0, reply.Rcode);
            var address = Assert.Single(reply.Addresses);
            seen.Add(address);
            // the very first connection, no retry: the answer was released after the commit
            var outcome = Probe.Tcp(c.Ns, Guard(address), TcpPort, TimeSpan.FromSeconds(2));
            Assert.True(outcome == ProbeOutcome.Connected, $"lookup {i}: {name} -> {address}, first connection {outcome}\n{fx.TableText()}");
        }
        output.WriteLine("answers: " + string.Join(", ", seen));
        Assert.True(seen.Distinct().Count() >= 3, "the upstream rotated its answers");
        await c.C.RemoveAsync();
    });

    [Fact]
    public Task Wildcards_match_exactly_one_label_and_double_star_any_depth() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        fx.Dns.Set("a.svc.example.test", 60, Server1);
        fx.Dns.Set("a.b.svc.example.test", 60, Server2);
        fx.Dns.Set("svc.example.test", 60, Server2);
        fx.Dns.Set("evilsvc.example.test", 60, Server2);
        var one = await Started("star", HostsRule("*.svc.example.test"));
        var any = await Started("starstar", HostsRule("**.svc.example.test"));

        var reply = Ask(one.Ns, "a.svc.example.test");
        Assert.Equal(0, reply.Rcode);
        Assert.Equal([Server1], reply.Addresses);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(one.Ns, Server1, TcpPort, TimeSpan.FromSeconds(2)));
        foreach (var refused in new[] { "a.b.svc.example.test", "svc.example.test", "evilsvc.example.test" })
        {
            var before = fx.Dns.QueriesFor(refused);
            var r = Ask(one.Ns, refused);
            Assert.True(r.Rcode == Refused, $"*.svc.example.test must not allow {refused}: rcode {r.Rcode}");
            Assert.Equal(before, fx.Dns.QueriesFor(refused));
        }
        fx.AssertTcpDropped(one.Ns, Server2, TcpPort, what: "(no refused name opened anything)");

        reply = Ask(any.Ns, "a.b.svc.example.test");
        Assert.Equal(0, reply.Rcode);
        Assert.Equal([Server2], reply.Addresses);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(any.Ns, Server2, TcpPort, TimeSpan.FromSeconds(2)));
        Assert.Equal(Refused, Ask(any.Ns, "svc.example.test").Rcode);
        Assert.Equal(Refused, Ask(any.Ns, "evilsvc.example.test").Rcode);
        await one.C.RemoveAsync();
        await any.C.RemoveAsync();
    });

    [Fact]
    public Task A_name_not_allowed_never_reaches_the_upstream_and_other_resolvers_are_never_reached() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        fx.Dns.Set("ok.allowed.test.example", 60, Server1);
        fx.Dns.Set("secret.exfil.test.example", 60, Server2);
        using var other = TestDnsServer.Start(H.InternetNsPath, Server2);
        other.Set("ok.allowed.test.example", 60, Client2);
        var refused = await Started("refused", HostsRule("ok.allowed.test.example"));
        var nx = await Started("nxdomain", HostsRule("ok.allowed.test.example"), new() { ["whalewall.dns.reject"] = "nxdomain" });

        foreach (var tcp in new[] { false, true })
        {
            Assert.Equal(Refused, Ask(refused.Ns, "secret.exfil.test.example", tcp: tcp).Rcode);
            Assert.Equal(NxDomain, Ask(nx.Ns, "secret.exfil.test.example", tcp: tcp).Rcode);
        }
        Assert.Equal(0, fx.Dns.QueriesFor("secret.exfil.test.example"));

        // straight to another resolver, UDP and TCP: it never hears anything (the table sends
        // every port-53 packet to the proxy, which asks the container's own resolver)
        foreach (var tcp in new[] { false, true })
        {
            var reply = DnsStub.Ask(refused.Ns, Server2, 53, "ok.allowed.test.example", tcp);
            output.WriteLine($"{(tcp ? "tcp" : "udp")} to {Server2}:53 -> {(reply is null ? "nothing" : $"rcode {reply.Rcode} {string.Join(",", reply.Addresses)}")}");
            Assert.DoesNotContain(Client2, reply?.Addresses ?? []);
            Assert.Equal(Refused, DnsStub.Ask(refused.Ns, Server2, 53, "secret.exfil.test.example", tcp)?.Rcode);
        }
        Assert.Empty(other.Log);
        Assert.Equal(0, fx.Dns.QueriesFor("secret.exfil.test.example"));
        await refused.C.RemoveAsync();
        await nx.C.RemoveAsync();
    });

    [Fact]
    public Task Metrics_and_status_show_each_containers_lookups() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        fx.Dns.Set("seen.status.test.example", 120, Server1);
        var c = await Started("dnsstatus", HostsRule("*.status.test.example"));
        var allowed = Ask(c.Ns, "seen.status.test.example");
        Assert.Equal([Server1], allowed.Addresses);
        Assert.Equal(Refused, Ask(c.Ns, "hidden.elsewhere.test.example").Rcode);
        Assert.Equal(Refused, Ask(c.Ns, "hidden.elsewhere.test.example", tcp: true).Rcode);

        double Count(List<PromSample> s, string outcome) => s
            .Where(x => x.Name == "whalewall_dns_queries_total" && x.Labels.GetValueOrDefault("id") == c.C.Id && x.Labels["outcome"] == outcome)
            .Sum(x => x.Value);
        var scrape = await fx.ScrapeAsync();
        Assert.Equal(1, Count(scrape, "allowed"));
        Assert.Equal(2, Count(scrape, "refused"));
        Assert.Equal(c.C.Name, scrape.First(x => x.Name == "whalewall_dns_queries_total" && x.Labels.GetValueOrDefault("id") == c.C.Id).Labels["name"]);
        Assert.True(scrape.Single(x => x.Name == "whalewall_dns_proxy_added_seconds_count").Value >= 1, "the added-latency histogram counted the answer");
        Assert.True(await E2eProcess.Eventually(() => File.ReadAllText(fx.Daemon.LogFile).Contains($"{c.C.Name} ({c.C.Id[..12]}): refused: hidden.elsewhere.test.example"), TimeSpan.FromSeconds(5)),
            "the daemon's log explains the refusal:\n" + fx.Daemon.LogTail(20));

        // status: the daemon's report lists what the container's own lookup opened, until when
        System.Text.Json.Nodes.JsonNode? learned = null;
        var listed = await E2eProcess.Eventually(() =>
        {
            var (code, json, _) = fx.Daemon.Cli("status", "--json");
            if (code != 0) return false;
            var entry = System.Text.Json.Nodes.JsonNode.Parse(json)!["containers"]!.AsArray().FirstOrDefault(x => x!["id"]!.GetValue<string>() == c.C.Id);
            learned = entry?["dns_learned"];
            return learned is System.Text.Json.Nodes.JsonArray { Count: > 0 };
        }, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(250));
        Assert.True(listed, $"status lists no learned names for {c.C.Name}: {learned}");
        var first = learned!.AsArray().Single()!;
        Assert.Equal("seen.status.test.example", first["name"]!.GetValue<string>());
        Assert.Equal(Server1, first["address"]!.GetValue<string>());
        var expires = DateTimeOffset.Parse(first["expires"]!.GetValue<string>());
        Assert.InRange(expires, DateTimeOffset.UtcNow.AddSeconds(60), DateTimeOffset.UtcNow.AddSeconds(200));
        Assert.Contains($"looked up seen.status.test.example -> {Server1}", fx.Daemon.Cli("status").Out);

        await c.C.RemoveAsync();
        Assert.True(await E2eProcess.Eventually(async () => Count(await fx.ScrapeAsync(), "allowed") == 0, TimeSpan.FromSeconds(10)),
            "a removed container's DNS series are dropped");
    });

    [Fact]
    public Task Two_containers_resolving_the_same_name_each_get_only_their_own_addresses() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        ServersOnClientAddresses();
        const string name = "edge.cdn.test.example";
        using var rotation = Rotate(name);
        var a = await Started("cdn-a", HostsRule("*.cdn.test.example"));
        var b = await Started("cdn-b", HostsRule("**.cdn.test.example", "other.test.example"));

        var forA = Assert.Single(Ask(a.Ns, name).Addresses);
        var forB = Assert.Single(Ask(b.Ns, name).Addresses);
        output.WriteLine($"{name}: {forA} for a, {forB} for b");
        Assert.NotEqual(forA, forB);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.Ns, forA, TcpPort, TimeSpan.FromSeconds(2)));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(b.Ns, forB, TcpPort, TimeSpan.FromSeconds(2)));
        fx.AssertTcpDropped(a.Ns, forB, TcpPort, what: "(b's answer is b's alone)");
        fx.AssertTcpDropped(b.Ns, forA, TcpPort, what: "(a's answer is a's alone)");
        await a.C.RemoveAsync();
        await b.C.RemoveAsync();
    });

    /// <summary>The answer waits for the kernel: every transaction of the writer is slowed by
    /// 300 ms, and the first connection right after each lookup must still succeed. Each try
    /// asks for an address not open before (four addresses in turn, each expiring 3 s after its
    /// answer: TTL 1 s + grace 2 s).</summary>
    /// <para>Issue 15 asks for 100 of 100. "First" is asked of the kernel (<see cref="FirstSyn"/>:
    /// connected, and no SYN retransmitted), not of a deadline under the 1 s SYN retransmission
    /// time, which a loaded machine can make the probe miss. One earlier 100-try run with the 900 ms
    /// deadline gave 99 (try 20: answer after 323 ms, then time out; cause not proven). With the
    /// proxy not awaiting the commit: 0 of 20.</para>
    [Fact]
    public Task The_first_connection_after_a_lookup_succeeds_every_time_with_a_slow_kernel() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        ServersOnClientAddresses();
        const string name = "first.slow.test.example";
        using var rotation = Rotate(name);
        var c = await Started("slow", HostsRule("*.slow.test.example"));
        fx.InjectFaults("delay 300");
        var failures = new List<string>();
        const int tries = 100;
        try
        {
            for (var i = 0; i < tries; i++)
            {
                var started = DateTime.UtcNow;
                var reply = DnsStub.Ask(c.Ns, Dns, 53, name, timeout: TimeSpan.FromSeconds(5));
                var answered = DateTime.UtcNow - started;
                if (reply is not { Rcode: 0, Addresses: [var address] })
                {
                    failures.Add($"{i}: answer {reply?.Rcode}");
                    continue;
                }
                var first = FirstSyn.Connect(c.Ns, Guard(address), TcpPort);
                if (!first.FirstTry)
                {
                    // the container's element for the address right then (its counter: did the SYN match it?)
                    var held = fx.TableText().Split('\n').Where(l => l.Contains(" . " + address + " . ")).Select(l => l.Trim());
                    failures.Add($"{i} at {started:HH:mm:ss.fff}: {address} {first} (answer after {answered.TotalMilliseconds:F0} ms); " +
                                 $"outh4 then: [{string.Join("; ", held)}]");
                }
                if (i == 0) output.WriteLine($"first answer after {answered.TotalMilliseconds:F0} ms (writer delay 300 ms)");
                await Task.Delay(1000); // the address of four tries ago has expired by then
            }
        }
        finally { fx.InjectFaults("delay 0"); }
        output.WriteLine($"{tries - failures.Count} of {tries} first connections succeeded");
        Assert.True(failures.Count == 0, string.Join("; ", failures) + "\n" + fx.TableText());
        await c.C.RemoveAsync();
    });
}
