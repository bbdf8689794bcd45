using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using ARSoft.Tools.Net.Dns;
using WhaleWall.DnsProxy;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Names;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>
/// WhaleWall's table with the DNS proxy's part (<see cref="DnsProxyLayout"/>) in the router
/// namespace; the client namespace plays a filtered container (opted in, allowed TCP 80 to the
/// server and nothing else), the server namespace holds "another resolver" on 198.18.20.3 and
/// 2001:db8:20::3, port 53, UDP and TCP, with a query log. A stand-in proxy (a DNS server that
/// answers everything with 198.19.0.53) listens on the router's client-side addresses, port
/// 15353. Every port-53 query of the container, to any address, must end at the stand-in or be
/// dropped; never at the other resolver. The proxy's port is reachable only that way.
/// </summary>
public sealed class DnsRedirectTests : IDisposable
{
    private const string Table = "whalewall";
    private const int ProxyPort = 15353;
    private const string OtherResolver4 = "198.18.20.3";
    private const string OtherResolver6 = "2001:db8:20::3";
    private const string Answer = "198.19.0.53";
    private readonly KernelLab lab = new();
    private readonly List<IDisposable> servers = [];
    private readonly TestDnsServer other4, other6, standIn4, standIn6;

    public DnsRedirectTests()
    {
        // xUnit never disposes a test class whose constructor threw: clean up here then (a
        // failed set-up once left its namespaces behind, and they broke later kernel tests)
        try
        {
            lab.Ip(lab.ServerName, "addr", "add", OtherResolver4 + "/24", "dev", KernelLab.ServerIf);
            lab.Ip(lab.ServerName, "-6", "addr", "add", OtherResolver6 + "/64", "dev", KernelLab.ServerIf, "nodad");
            other4 = Serve(lab.ServerNs, OtherResolver4, 53);
            other6 = Serve(lab.ServerNs, OtherResolver6, 53);
            standIn4 = Serve(lab.RouterNs, KernelLab.RouterClientSideIp4, ProxyPort);
            standIn6 = Serve(lab.RouterNs, KernelLab.RouterClientSideIp6, ProxyPort);
            foreach (var s in new[] { other4, other6, standIn4, standIn6 }) s.Set("anything.example.test", 60, Answer);
            InstallTable(proxied: true);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private TestDnsServer Serve(string ns, string ip, int port)
    {
        var server = TestDnsServer.Start(ns, ip, port);
        servers.Add(server);
        return server;
    }

    public void Dispose()
    {
        foreach (var s in servers) s.Dispose();
        lab.Dispose();
    }

    private void InstallTable(bool proxied)
    {
        var facts = new ContainerFacts("client", "client", true,
            ImmutableDictionary<string, string>.Empty.Add(LabelKeys.Enabled, "true").Add(LabelKeys.Rules,
                $"output: [{{ips: [{KernelLab.ServerIp4}, \"{KernelLab.ServerIp6}\"], proto: tcp, dst_ports: [80]}}]"),
            [new NetworkAttachment("lab", "lab", IPAddress.Parse(KernelLab.ClientIp4), IPAddress.Parse(KernelLab.ClientIp6))], []);
        var fragment = Compiler.Compile(facts, LabelParser.Decide(facts.Labels), []).Fragment;
        // WhaleWall's table holds the proxy's chains and rules (port 15353)
        Assert.Equal(NftLayout.DnsProxyPort, ProxyPort);
        var result = lab.Nft.Run(NftJson.FullTable(Table, fragment.Elements));
        Assert.True(result.Ok, result.Error);
        if (proxied) SetProxied(true);
    }

    private void SetProxied(bool on)
    {
        var verb = on ? "add" : "delete";
        string Element(string set, string ip) =>
            "{\"" + verb + "\":{\"element\":{\"family\":\"inet\",\"table\":\"" + Table + "\",\"name\":\"" + set + "\",\"elem\":[\"" + ip + "\"]}}}";
        var result = lab.Nft.Run("{\"nftables\":[" + Element("dnsproxy4", KernelLab.ClientIp4) + "," + Element("dnsproxy6", KernelLab.ClientIp6) + "]}");
        Assert.True(result.Ok, result.Error);
    }

    private DnsMessage? Ask(string ns, string server, int port, bool tcp) =>
        DnsClientProbe.Ask(ns, new IPEndPoint(IPAddress.Parse(server), port), "anything.example.test", tcp: tcp, timeout: TimeSpan.FromSeconds(1));

    private string Ruleset => lab.Exec(lab.RouterName, "nft", "list", "ruleset");

    [Theory]
    [InlineData(OtherResolver4, false)]
    [InlineData(OtherResolver4, true)]
    [InlineData(OtherResolver6, false)]
    [InlineData(OtherResolver6, true)]
    [InlineData("198.18.20.99", false)]                       // nobody there
    [InlineData("198.18.20.99", true)]
    [InlineData(KernelLab.RouterClientSideIp4, false)]         // the host's own address
    [InlineData(KernelLab.RouterServerSideIp4, true)]
    [InlineData(KernelLab.RouterClientSideIp6, false)]
    public void Port_53_to_any_address_ends_at_the_proxy(string target, bool tcp)
    {
        var answer = Ask(lab.ClientNs, target, 53, tcp);
        Assert.True(answer is not null, $"no answer via {target}\n{Ruleset}");
        // the reply seems to come from the address asked (conntrack undoes the redirect) ...
        Assert.Equal(Answer, Assert.Single(answer!.AnswerRecords.OfType<ARecord>()).Address.ToString());
        // ... and it was the stand-in that answered, never the other resolver
        var standIn = target.Contains(':') ? standIn6 : standIn4;
        var logged = Assert.Single(standIn.Log);
        Assert.Equal(tcp ? "tcp" : "udp", logged.Transport);
        Assert.Equal(target.Contains(':') ? KernelLab.ClientIp6 : KernelLab.ClientIp4, ((IPEndPoint)logged.From).Address.ToString()); // identity: the source survives
        Assert.Empty(other4.Log);
        Assert.Empty(other6.Log);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_proxy_port_is_not_reachable_directly(bool tcp)
    {
        // from the proxied container itself, without the redirect
        Assert.Null(Ask(lab.ClientNs, KernelLab.RouterClientSideIp4, ProxyPort, tcp));
        Assert.Null(Ask(lab.ClientNs, KernelLab.RouterClientSideIp6, ProxyPort, tcp));
        // from outside (the server side: neither managed nor proxied)
        Assert.Null(Ask(lab.ServerNs, KernelLab.RouterClientSideIp4, ProxyPort, tcp));
        Assert.Null(Ask(lab.ServerNs, KernelLab.RouterClientSideIp6, ProxyPort, tcp));
        Assert.Empty(standIn4.Log);
        Assert.Empty(standIn6.Log);
        // while the unfiltered outside still reaches the other resolver (the rules touch only proxied sources)
        Assert.NotNull(Ask(lab.RouterNs, OtherResolver4, 53, tcp));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_filtered_container_that_is_not_proxied_sends_nothing_on_port_53(bool tcp)
    {
        SetProxied(false);
        Assert.Null(Ask(lab.ClientNs, OtherResolver4, 53, tcp));
        Assert.Null(Ask(lab.ClientNs, OtherResolver6, 53, tcp));
        Assert.Null(Ask(lab.ClientNs, KernelLab.RouterClientSideIp4, ProxyPort, tcp));
        Assert.Empty(other4.Log);
        Assert.Empty(other6.Log);
        Assert.Empty(standIn4.Log);
        // and what its rules allow still works: the test is not passing on a dead network
        Assert.Equal(ProbeOutcome.Connected, ProbeWithServer());
    }

    private ProbeOutcome ProbeWithServer()
    {
        using var http = TcpServer.Start(lab.ServerNs, KernelLab.ServerIp4, 80);
        return Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_real_proxy_behind_the_redirect_answers_from_the_containers_own_upstream(bool tcp)
    {
        // the stand-ins make way for the real proxy on the same port
        standIn4.Dispose();
        standIn6.Dispose();
        using var upstream = TestDnsServer.Start(lab.ServerNs, KernelLab.ServerIp4);
        upstream.Set("api.example.test", 60, "198.19.0.10");
        var committed = new ConcurrentQueue<LearnedBatch>();
        var policy = new DnsPolicy(new NameMatcher([NamePattern.Parse("api.example.test")]), false, RejectMode.Refused, []);
        var client = new ProxyClient("client", policy, [new IPEndPoint(IPAddress.Parse(KernelLab.ServerIp4), 53)]);
        using var proxy = new DnsProxyServer(
            DnsProxyOptions.Default with { Listen = [new IPEndPoint(IPAddress.IPv6Any, ProxyPort)] },
            new OneClient(IPAddress.Parse(KernelLab.ClientIp4), client), new Recorder(committed),
            upstreamSockets: (f, t, p) => Netns.Run(lab.RouterNs, () => new Socket(f, t, p)));
        Netns.Run(lab.RouterNs, proxy.Start);

        // the container asks "another resolver"; the proxy asks the container's own upstream
        var answer = DnsClientProbe.Ask(lab.ClientNs, new IPEndPoint(IPAddress.Parse(OtherResolver4), 53), "api.example.test", tcp: tcp);
        Assert.True(answer is not null, Ruleset);
        Assert.Equal("198.19.0.10", Assert.Single(answer!.AnswerRecords.OfType<ARecord>()).Address.ToString());
        Assert.Equal("198.19.0.10", Assert.Single(Assert.Single(committed).Addresses).Address.ToString());
        Assert.Equal(KernelLab.RouterServerSideIp4, ((IPEndPoint)Assert.Single(upstream.Log).From).Address.ToString());
        Assert.Empty(other4.Log);
        // a name it may not resolve: REFUSED, and the upstream never hears of it
        var refused = DnsClientProbe.Ask(lab.ClientNs, new IPEndPoint(IPAddress.Parse(OtherResolver4), 53), "tunnel.example.test", tcp: tcp);
        Assert.Equal(ReturnCode.Refused, refused!.ReturnCode);
        Assert.Single(upstream.Log);
    }

    private sealed class OneClient(IPAddress address, ProxyClient client) : IProxyDirectory
    {
        public ProxyClient? Find(IPAddress source) => source.Equals(address) ? client : null;
    }

    private sealed class Recorder(ConcurrentQueue<LearnedBatch> batches) : ILearnedAddresses
    {
        public Task CommitAsync(string containerId, LearnedBatch batch, CancellationToken cancellation)
        {
            batches.Enqueue(batch);
            return Task.CompletedTask;
        }
    }
}
