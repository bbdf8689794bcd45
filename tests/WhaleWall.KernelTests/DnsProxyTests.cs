using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ARSoft.Tools.Net.Dns;
using WhaleWall.DnsProxy;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Names;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>
/// The proxy adapter against a real DNS server, in namespaces: the proxy listens in the router
/// namespace (its upstream sockets are made there too), the "container" asks from the client
/// namespace, the upstream (<see cref="TestDnsServer"/>, UDP and TCP, with a query log) lives in
/// the server namespace. The commit seam is controlled by the test.
/// </summary>
public sealed class DnsProxyTests : IDisposable
{
    private const int Port = 15353;
    private readonly KernelLab lab = new();
    private readonly TestDnsServer upstream;
    private readonly Directory directory = new();
    private readonly GatedCommit commit = new();
    private readonly DnsProxyServer proxy;
    private readonly IPEndPoint proxy4 = new(IPAddress.Parse(KernelLab.RouterClientSideIp4), Port);
    private readonly IPEndPoint proxy6 = new(IPAddress.Parse(KernelLab.RouterClientSideIp6), Port);

    private sealed class Directory : IProxyDirectory
    {
        public readonly ConcurrentDictionary<IPAddress, ProxyClient> Clients = new();
        public ProxyClient? Find(IPAddress source) => Clients.GetValueOrDefault(source);
    }

    /// <summary>Records every commit; holds it until the test opens the gate.</summary>
    private sealed class GatedCommit : ILearnedAddresses
    {
        public volatile TaskCompletionSource Gate = Open();
        public readonly ConcurrentQueue<(string Container, LearnedBatch Batch, long ReleasedAt)> Committed = new();

        public static TaskCompletionSource Open()
        {
            var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            t.SetResult();
            return t;
        }

        public async Task CommitAsync(string containerId, LearnedBatch batch, CancellationToken cancellation)
        {
            await Gate.Task.WaitAsync(cancellation);
            Committed.Enqueue((containerId, batch, Stopwatch.GetTimestamp()));
        }

        public IEnumerable<string> Addresses => Committed.SelectMany(c => c.Batch.Addresses).Select(a => a.Address.ToString());
    }

    public DnsProxyTests()
    {
        upstream = TestDnsServer.Start(lab.ServerNs, KernelLab.ServerIp4);
        var upstreams = new[] { new IPEndPoint(IPAddress.Parse(KernelLab.ServerIp4), 53) };
        var policy = new DnsPolicy(new NameMatcher(new[] { "api.example.test", "*.svc.example.test", "*.cdn.example.test" }.Select(NamePattern.Parse)),
            false, RejectMode.Refused, []);
        directory.Clients[IPAddress.Parse(KernelLab.ClientIp4)] = new ProxyClient("c1", policy, upstreams);
        directory.Clients[IPAddress.Parse(KernelLab.ClientIp6)] = new ProxyClient("c1", policy, upstreams);
        var options = DnsProxyOptions.Default with { Listen = [new IPEndPoint(IPAddress.IPv6Any, Port)] };
        proxy = new DnsProxyServer(options, directory, commit,
            upstreamSockets: (f, t, p) => Netns.Run(lab.RouterNs, () => new Socket(f, t, p)));
        Netns.Run(lab.RouterNs, proxy.Start);
    }

    public void Dispose()
    {
        proxy.Dispose();
        upstream.Dispose();
        lab.Dispose();
    }

    private DnsMessage? Ask(string name, ushort type = 1, bool tcp = false, bool v6 = false, TimeSpan? timeout = null) =>
        DnsClientProbe.Ask(lab.ClientNs, v6 ? proxy6 : proxy4, name, type, tcp, timeout);

    private static string[] AddressesOf(DnsMessage m) =>
        m.AnswerRecords.OfType<AddressRecordBase>().Select(a => a.Address.ToString()).Order().ToArray();

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void An_allowed_name_is_answered_after_its_addresses_are_committed(bool tcp, bool v6)
    {
        upstream.Set("a.svc.example.test", 60, "198.19.0.10", "198.19.0.11");
        var answer = Ask("A.Svc.Example.Test", tcp: tcp, v6: v6);
        Assert.NotNull(answer);
        Assert.Equal(ReturnCode.NoError, answer!.ReturnCode);
        Assert.Equal(["198.19.0.10", "198.19.0.11"], AddressesOf(answer));
        var (container, batch, _) = Assert.Single(commit.Committed);
        Assert.Equal("c1", container);
        Assert.Equal("a.svc.example.test", batch.QueryName.Value);
        Assert.Equal(["198.19.0.10", "198.19.0.11"], batch.Addresses.Select(a => a.Address.ToString()).Order());
        Assert.All(batch.Addresses, a => Assert.Equal(TimeSpan.FromSeconds(90), a.Timeout));
        Assert.Equal(1, upstream.QueriesFor("a.svc.example.test"));
    }

    [Theory]
    [InlineData("a.b.svc.example.test", false)]
    [InlineData("svc.example.test", false)]
    [InlineData("evilsvc.example.test", true)]
    [InlineData("data-4142434445.tunnel.example.test", true)]
    public void A_name_not_allowed_is_refused_and_never_reaches_the_upstream(string name, bool tcp)
    {
        upstream.Set(name, 60, "198.19.0.66");
        var answer = Ask(name, tcp: tcp);
        Assert.NotNull(answer);
        Assert.Equal(ReturnCode.Refused, answer!.ReturnCode);
        Assert.Empty(answer.AnswerRecords);
        Assert.Empty(upstream.Log);
        Assert.Empty(commit.Committed);
    }

    [Fact]
    public void A_container_labelled_nxdomain_gets_nxdomain()
    {
        var c = directory.Clients[IPAddress.Parse(KernelLab.ClientIp4)];
        directory.Clients[IPAddress.Parse(KernelLab.ClientIp4)] = c with { Policy = c.Policy with { Reject = RejectMode.NxDomain } };
        Assert.Equal(ReturnCode.NxDomain, Ask("other.example.test")!.ReturnCode);
        Assert.Empty(upstream.Log);
    }

    [Fact]
    public void Other_query_types_are_refused_without_asking_upstream()
    {
        Assert.Equal(ReturnCode.Refused, Ask("api.example.test", type: 16 /* TXT */)!.ReturnCode);
        Assert.Equal(ReturnCode.Refused, Ask("api.example.test", type: 65 /* HTTPS */)!.ReturnCode);
        Assert.Empty(upstream.Log);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_answer_waits_for_the_commit_however_slow_it_is(bool tcp)
    {
        upstream.Set("api.example.test", 60, "198.19.0.10");
        // slower than the upstream timeout (2 s) and the stub's usual patience: no fallback releases it
        commit.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var asking = Task.Run(() => (Answer: Ask("api.example.test", tcp: tcp, timeout: TimeSpan.FromSeconds(10)), At: Stopwatch.GetTimestamp()));
        Thread.Sleep(3000);
        Assert.False(asking.IsCompleted, "the answer left before the kernel committed");
        Assert.Equal(1, upstream.QueriesFor("api.example.test")); // asked upstream long ago: the wait is the commit
        var released = Stopwatch.GetTimestamp();
        commit.Gate.SetResult();
        var (answer, at) = asking.Result;
        Assert.NotNull(answer);
        Assert.Equal(["198.19.0.10"], AddressesOf(answer!));
        Assert.True(at >= released, "the answer arrived before the commit completed");
    }

    [Fact]
    public void A_failed_commit_is_a_servfail_with_no_addresses()
    {
        upstream.Set("api.example.test", 60, "198.19.0.10");
        commit.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        commit.Gate.SetException(new InvalidOperationException("kernel said no"));
        var answer = Ask("api.example.test");
        Assert.Equal(ReturnCode.ServerFailure, answer!.ReturnCode);
        Assert.Empty(answer.AnswerRecords);
    }

    [Fact]
    public void Spoofed_answers_are_ignored_and_open_nothing()
    {
        upstream.Set("api.example.test", 60, "198.19.0.10");
        lab.Ip(lab.ServerName, "addr", "add", "198.18.20.3/24", "dev", KernelLab.ServerIf);
        using var other = Netns.Run(lab.ServerNs, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(IPAddress.Parse("198.18.20.3"), 53));
            return s;
        });
        var forged = 0;
        upstream.BeforeAnswer = async (query, from, serverSocket) =>
        {
            byte[] Forge(ushort id, string name) =>
                Forged(id, name, IPAddress.Parse("198.19.0.66"));
            var id = (ushort)((query[0] << 8) | query[1]);
            // right id and question, wrong sender address
            await other.SendToAsync(Forge(id, "api.example.test"), SocketFlags.None, from);
            // right sender, wrong id
            await serverSocket.SendToAsync(Forge((ushort)(id ^ 0x5a5a), "api.example.test"), SocketFlags.None, from);
            // right sender and id, another question
            await serverSocket.SendToAsync(Forge(id, "evil.example.test"), SocketFlags.None, from);
            // right sender, not DNS at all
            await serverSocket.SendToAsync(new byte[] { 1, 2, 3 }, SocketFlags.None, from);
            Interlocked.Increment(ref forged);
            await Task.Delay(100);
        };
        var answer = Ask("api.example.test");
        Assert.Equal(1, forged);
        Assert.Equal(["198.19.0.10"], AddressesOf(answer!));
        Assert.Equal(["198.19.0.10"], commit.Addresses);
    }

    /// <summary>An answer to <paramref name="name"/> (A, one address) with this id.</summary>
    private static byte[] Forged(ushort id, string name, IPAddress address)
    {
        var encoded = TestDnsServer.EncodeName(name);
        using var m = new MemoryStream();
        m.Write([(byte)(id >> 8), (byte)id, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        m.Write(encoded);
        m.Write([0, 1, 0, 1, 0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
        m.Write(address.GetAddressBytes());
        return m.ToArray();
    }

    [Fact]
    public void Hostile_datagrams_from_the_upstream_are_survived_and_ignored()
    {
        upstream.Set("api.example.test", 60, "198.19.0.10");
        upstream.BeforeAnswer = async (query, from, serverSocket) =>
        {
            var id = new[] { query[0], query[1] };
            byte[] Header(int an) => [id[0], id[1], 0x81, 0x80, 0, 1, 0, (byte)an, 0, 0, 0, 0];
            byte[][] hostile =
            [
                // the question name is a compression pointer to itself
                [.. Header(0), 0xC0, 0x0C, 0, 1, 0, 1],
                // question fine, the answer's owner points at the answer itself (a loop)
                [.. Header(1), .. TestDnsServer.EncodeName("api.example.test"), 0, 1, 0, 1, 0xC0, 34, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 19, 0, 66],
                // a pointer past the end
                [.. Header(1), .. TestDnsServer.EncodeName("api.example.test"), 0, 1, 0, 1, 0xFF, 0xFF],
                // claims 65,535 answers, holds none
                [.. Header(0), .. TestDnsServer.EncodeName("api.example.test"), 0, 1, 0, 1],
                // as big as a datagram gets, garbage
                [.. Header(0), .. Enumerable.Repeat((byte)0xC0, 60_000)],
            ];
            hostile[3][6] = 0xFF; hostile[3][7] = 0xFF;
            foreach (var datagram in hostile) await serverSocket.SendToAsync(datagram, SocketFlags.None, from);
            await Task.Delay(50);
        };
        var watch = Stopwatch.StartNew();
        var answer = Ask("api.example.test");
        Assert.Equal(["198.19.0.10"], AddressesOf(answer!));
        Assert.Equal(["198.19.0.10"], commit.Addresses);
        Assert.True(watch.ElapsedMilliseconds < 1500, $"took {watch.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void A_rule_on_a_cname_target_opens_the_target_addresses()
    {
        var c = directory.Clients[IPAddress.Parse(KernelLab.ClientIp4)];
        directory.Clients[IPAddress.Parse(KernelLab.ClientIp4)] = c with { Policy = c.Policy with { ResolveAny = true } };
        upstream.SetCname("www.customer.test", "edge.cdn.example.test", ttl: 300);
        upstream.Set("edge.cdn.example.test", 20, "198.19.0.12");
        var answer = Ask("www.customer.test");
        Assert.Equal(["198.19.0.12"], AddressesOf(answer!));
        Assert.Single(answer!.AnswerRecords.OfType<CNameRecord>());
        var (_, batch, _) = Assert.Single(commit.Committed);
        Assert.Equal(["edge.cdn.example.test"], batch.AllowedNames.Select(n => n.Value));
        Assert.Equal(TimeSpan.FromSeconds(50), batch.Addresses[0].Timeout); // min TTL on the chain (20) + grace
    }

    [Fact]
    public void A_truncated_udp_answer_is_asked_again_over_tcp()
    {
        upstream.Set("api.example.test", 60, "198.19.0.10");
        upstream.TruncateUdp = true;
        var answer = Ask("api.example.test");
        Assert.Equal(["198.19.0.10"], AddressesOf(answer!));
        Assert.Equal(["udp", "tcp"], upstream.Log.Select(l => l.Transport));
    }

    [Fact]
    public void Over_its_query_rate_a_container_is_refused_without_asking_upstream()
    {
        upstream.Set("api.example.test", 60, "198.19.0.10");
        var options = DnsProxyOptions.Default with
        {
            Listen = [new IPEndPoint(IPAddress.IPv6Any, Port + 1)],
            Rate = new RateLimit(PerSecond: 0.01, Burst: 3),
        };
        using var limited = new DnsProxyServer(options, directory, commit,
            upstreamSockets: (f, t, p) => Netns.Run(lab.RouterNs, () => new Socket(f, t, p)));
        Netns.Run(lab.RouterNs, limited.Start);
        var rcodes = Enumerable.Range(0, 6)
            .Select(_ => DnsClientProbe.Ask(lab.ClientNs, new IPEndPoint(proxy4.Address, Port + 1), "api.example.test")!.ReturnCode)
            .ToArray();
        Assert.Equal([ReturnCode.NoError, ReturnCode.NoError, ReturnCode.NoError, ReturnCode.Refused, ReturnCode.Refused, ReturnCode.Refused], rcodes);
        Assert.Equal(3, upstream.QueriesFor("api.example.test"));
    }

    [Fact]
    public void A_source_that_is_no_container_is_refused()
    {
        directory.Clients.Clear();
        Assert.Equal(ReturnCode.Refused, Ask("api.example.test")!.ReturnCode);
        Assert.Empty(upstream.Log);
    }
}
