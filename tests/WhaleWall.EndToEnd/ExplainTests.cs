using System.Text.Json.Nodes;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 16: `whalewall explain` against the running daemon agrees with real packets.
/// For each case of an enforcement matrix (a peer allowed or not, address and port allowed or
/// not, UDP vs TCP, a host name through the DNS proxy allowed or not, a published port from
/// outside allowed or not, ingress from a neighbour) explain is asked once, then the real packet
/// is sent: an accept must get through (a connection or a reset: the SYN arrived; an echo for
/// UDP), a drop must time out. Every element explain names for an accept must be in the table.</summary>
[Collection(E2eCollection.Name)]
public sealed class ExplainTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private (bool Accepted, JsonObject Json) Explain(params string[] args)
    {
        var (code, stdout, stderr) = fx.Daemon.Cli(["explain", .. args, "--json"]);
        output.WriteLine($"$ whalewall explain {string.Join(' ', args)} -> exit {code}\n{stdout}{stderr}");
        Assert.True(code is 0 or 1, $"explain {string.Join(' ', args)} failed: exit {code}\n{stdout}\n{stderr}");
        var json = JsonNode.Parse(stdout)!.AsObject();
        var accepted = json["verdict"]!.GetValue<string>() == "accept";
        Assert.Equal(accepted ? 0 : 1, code);
        Assert.False(json["offline"]!.GetValue<bool>());
        if (accepted)
            foreach (var k in json["kernel"]!.AsArray())
                Assert.True(k!["present"]!.GetValue<bool?>() == true, $"explain names {k["element"]}, which the table does not hold\n{fx.TableText()}");
        return (accepted, json);
    }

    /// <summary>The text form, for the log (README's examples come from it).</summary>
    private void Text(params string[] args)
    {
        var (code, text, err) = fx.Daemon.Cli(["explain", .. args]);
        output.WriteLine($"$ whalewall explain {string.Join(' ', args)}   (exit {code})\n{text}{err}");
        Assert.True(code is 0 or 1, err);
    }

    /// <summary>Whether a TCP SYN gets through: a connection or a reset means it arrived; a drop
    /// times out. An expected pass is retried for a while (as every allowed probe here is).</summary>
    private async Task<bool> TcpPasses(bool expected, string ns, string ip, int port, string? sourceIp = null)
    {
        if (!expected) return Probe.Tcp(ns, Guard(ip), port, E2eFixture.DeniedTimeout, sourceIp) != ProbeOutcome.TimedOut;
        return await E2eProcess.Eventually(() => Probe.Tcp(ns, Guard(ip), port, TimeSpan.FromSeconds(1), sourceIp) != ProbeOutcome.TimedOut,
            E2eFixture.AllowedWithin, TimeSpan.FromMilliseconds(200));
    }

    private async Task<bool> UdpPasses(bool expected, string ns, string ip, int port)
    {
        if (!expected) return Probe.UdpEcho(ns, Guard(ip), port, E2eFixture.DeniedTimeout);
        return await E2eProcess.Eventually(() => Probe.UdpEcho(ns, Guard(ip), port, TimeSpan.FromSeconds(1)),
            E2eFixture.AllowedWithin, TimeSpan.FromMilliseconds(200));
    }

    private void Agree(string what, bool explained, bool real, bool expected)
    {
        output.WriteLine($"{what}: explain {(explained ? "accept" : "drop")}, packet {(real ? "passed" : "dropped")}");
        Assert.True(explained == real, $"{what}: explain says {(explained ? "accept" : "drop")}, the real packet {(real ? "passed" : "was dropped")}\n{fx.TableText()}");
        // the matrix is built so that each case is what its name says (no vacuous agreement)
        Assert.True(explained == expected, $"{what}: expected {(expected ? "accept" : "drop")}");
    }

    private async Task WaitReported(Func<JsonObject, bool> condition, string what)
    {
        var path = Path.Combine(fx.Daemon.DataDir, "daemon.json");
        var ok = await E2eProcess.Eventually(() =>
        {
            try { return JsonNode.Parse(File.ReadAllText(path)) is JsonObject r && condition(r); }
            catch (Exception e) when (e is IOException or System.Text.Json.JsonException or InvalidOperationException) { return false; }
        }, E2eFixture.AllowedWithin, TimeSpan.FromMilliseconds(100));
        Assert.True(ok, $"the daemon's report never showed {what}");
    }

    [Fact]
    public Task Explain_agrees_with_real_packets_across_the_enforcement_matrix() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var net = fx.Name("xnet");
        await H.CreateNetworkAsync(net);
        var db = await fx.StartedAsync("xdb", new ContainerOptions { Network = net, Labels = E2eLabels.OptIn() });
        await fx.WaitEnforcedAsync(db.C.Id);
        // a neighbour that may send anywhere: only the receiver's ingress can stop it
        var other = await fx.StartedAsync("xother", new ContainerOptions { Network = net, Labels = E2eLabels.OptIn("output:\n  - ips: [0.0.0.0/0]") });
        await fx.WaitEnforcedAsync(other.C.Id);
        var web = await fx.StartedAsync("xweb", new ContainerOptions
        {
            Network = net,
            PublishTcp = { [8080] = 18090 },
            Labels = E2eLabels.OptIn($"""
                output:
                  - container: {db.C.Name}
                    proto: tcp
                    dst_ports: [756]
                  - ips: [198.19.0.10]
                    proto: tcp
                    dst_ports: [80]
                  - ips: [198.19.0.10]
                    proto: udp
                    dst_ports: [{UdpPort}]
                  - hosts: ["*.explain.test.example"]
                    proto: tcp
                    dst_ports: [80]
                mapped_ports:
                  external:
                    allow: true
                    ips: [{Client1}]
                """),
        });
        await fx.WaitEnforcedAsync(web.C.Id);
        await db.C.ListenTcpAsync(756);
        await db.C.ListenTcpAsync(757);
        await other.C.ListenTcpAsync(756);
        await web.C.ListenTcpAsync(758);
        await web.C.ListenTcpAsync(8080);

        async Task Egress(string what, bool expected, string proto, string destination, int port, string ip)
        {
            var (accepted, _) = Explain(web.C.Name, proto, destination, port.ToString());
            var real = proto == "udp" ? await UdpPasses(accepted, web.Ns, ip, port) : await TcpPasses(accepted, web.Ns, ip, port);
            Agree(what, accepted, real, expected);
        }

        // a peer named by a container: rule, on its port and another; a container not named
        await Egress("peer, allowed port", true, "tcp", db.C.Name, 756, db.Ip);
        await Egress("peer, other port", false, "tcp", db.C.Name, 757, db.Ip);
        await Egress("container not named", false, "tcp", other.C.Name, 756, other.Ip);
        // address and port; another port, another address; UDP where only TCP is allowed and back
        await Egress("address and port", true, "tcp", Server1, TcpPort, Server1);
        await Egress("other port", false, "tcp", Server1, TcpPortOther, Server1);
        await Egress("other address", false, "tcp", Server2, TcpPort, Server2);
        await Egress("udp port", true, "udp", Server1, UdpPort, Server1);
        await Egress("other udp port", false, "udp", Server1, UdpPortOther, Server1);
        await Egress("tcp to the udp rule's port", false, "tcp", Server1, UdpPort, Server1);

        // a host name through the DNS proxy: port 53 goes to the proxy; an allowed name's answer
        // opens its address (and explain says which answer); a name not allowed is refused
        const string name = "www.explain.test.example";
        fx.Dns.Set(name, 60, Server2);
        fx.Dns.Set("www.elsewhere.test.example", 60, Server2);
        var (dnsAccepted, dnsJson) = Explain(web.C.Name, "udp", Dns, "53");
        var reply = DnsStub.Ask(web.Ns, Dns, 53, name);
        Agree("dns query", dnsAccepted, reply is not null, true);
        Assert.Equal("dns_redirect", dnsJson["hops"]![0]!["chain"]!.GetValue<string>());
        Assert.Equal([Server2], reply!.Addresses);
        await WaitReported(r => r["containers"]!.AsArray().Any(c => c!["id"]!.GetValue<string>() == web.C.Id &&
            (c["dns_learned"] as JsonArray)?.Any(l => l!["name"]!.GetValue<string>() == name) == true), $"{name} learned by {web.C.Name}");
        var (hostAccepted, hostJson) = Explain(web.C.Name, "tcp", name, TcpPort.ToString());
        Agree("allowed host name", hostAccepted, await TcpPasses(hostAccepted, web.Ns, Server2, TcpPort), true);
        Assert.Equal(Server2, hostJson["dns"]![0]!["address"]!.GetValue<string>());
        Assert.StartsWith("outh4 ", hostJson["elements"]![0]!.GetValue<string>());
        Assert.Equal("output[3]", hostJson["rule"]!["path"]!.GetValue<string>());
        Text(web.C.Name, "tcp", name, TcpPort.ToString());
        var (refusedAccepted, refusedJson) = Explain(web.C.Name, "tcp", "www.elsewhere.test.example", TcpPort.ToString());
        var refused = DnsStub.Ask(web.Ns, Dns, 53, "www.elsewhere.test.example");
        Agree("host name not allowed", refusedAccepted, refused is { Rcode: 0, Addresses.Count: > 0 }, false);
        Assert.Contains("refuses", refusedJson["reason"]!.GetValue<string>());

        // ingress: the published port from an allowed and a refused client outside, directly
        // from a neighbour (no DNAT), a port nobody opened, and the peer seen from its side
        async Task Ingress(string what, bool expected, string container, int port, string from, Func<bool, Task<bool>> send)
        {
            var (accepted, _) = Explain(container, "tcp", port.ToString(), "--from", from);
            Agree(what, accepted, await send(accepted), expected);
        }
        await Ingress("published port, allowed client", true, web.C.Name, 8080, Client1, e => TcpPasses(e, H.InternetNsPath, HostLink4, 18090, Client1));
        await Ingress("published port, other client", false, web.C.Name, 8080, Client2, e => TcpPasses(e, H.InternetNsPath, HostLink4, 18090, Client2));
        await Ingress("published port, neighbour directly", false, web.C.Name, 8080, other.C.Name, e => TcpPasses(e, other.Ns, web.Ip, 8080));
        await Ingress("neighbour to an unopened port", false, web.C.Name, 758, other.C.Name, e => TcpPasses(e, other.Ns, web.Ip, 758));
        await Ingress("peer seen from the receiver", true, db.C.Name, 756, web.C.Name, e => TcpPasses(e, web.Ns, db.Ip, 756));

        Text(web.C.Name, "tcp", db.C.Name, "757");
        Text(web.C.Name, "tcp", "8080", "--from", Client1);
        Text(db.C.Name, "tcp", "756", "--from", web.C.Name);

        // the text form names the rule with its line
        var (code, text, _) = fx.Daemon.Cli("explain", web.C.Name, "tcp", Server1, TcpPort.ToString());
        output.WriteLine(text);
        Assert.Equal(0, code);
        Assert.Contains("whalewall.rules output[1] (line 5)", text);
        Assert.Contains("(present)", text);

        await web.C.RemoveAsync();
        await other.C.RemoveAsync();
        await db.C.RemoveAsync();
    });
}
