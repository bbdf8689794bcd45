using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using WhaleWall.DnsProxy;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Names;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary>The DNS proxy's cost (issue 15), on loopback in the bench's namespace: a stub asks
/// the test DNS server directly, then through the real proxy (UDP listener, policy, upstream
/// query, answer checks, learning, an instant commit). Added latency = proxied - direct, at
/// p50 and p99, sequential queries. Throughput: concurrent stubs for a fixed time with the whole
/// process pinned to one CPU (stubs, proxy and upstream share it), and the proxy's own CPU per
/// query (process CPU per proxied query minus per direct query).</summary>
public static class DnsProxyLatency
{
    private const string Name = "api.bench.example";

    private sealed class OneClient(ProxyClient client) : IProxyDirectory
    {
        public ProxyClient? Find(IPAddress source) => client;
    }

    private sealed class InstantCommit : ILearnedAddresses
    {
        public Task CommitAsync(string containerId, LearnedBatch batch, CancellationToken cancellation) => Task.CompletedTask;
    }

    public static async Task RunAsync(Ctx ctx)
    {
        var rounds = ctx.Short ? 300 : 5000;
        var self = "/proc/self/ns/net";
        using var upstream = TestDnsServer.Start(self, "127.0.0.1", port: 0, withTcp: false);
        upstream.Set(Name, 300, "198.19.0.10", "198.19.0.11");
        var port = FreeUdpPort();
        var policy = new DnsPolicy(new NameMatcher([NamePattern.Parse("*.bench.example")]), false, RejectMode.Refused, []);
        var options = DnsProxyOptions.Default with
        {
            Listen = [new IPEndPoint(IPAddress.Loopback, port)],
            Rate = new RateLimit(1e9, 1e9),
        };
        using var proxy = new DnsProxyServer(options, new OneClient(new ProxyClient("bench", policy, [upstream.Endpoint])), new InstantCommit());
        proxy.Start();
        var proxied = new IPEndPoint(IPAddress.Loopback, port);

        // warm up both paths (JIT, sockets)
        Sequential(upstream.Endpoint, 200);
        Sequential(proxied, 200);
        var (direct, directCpu) = Sequential(upstream.Endpoint, rounds);
        var (through, throughCpu) = Sequential(proxied, rounds);
        var added50 = Stats.Percentile(through, 50) - Stats.Percentile(direct, 50);
        var added99 = Stats.Percentile(through, 99) - Stats.Percentile(direct, 99);
        ctx.Log($"dns proxy: direct {Stats.P50P99(direct)}; proxied {Stats.P50P99(through)}");
        ctx.Report.Add("DNS proxy: added latency per answer (instant commit)",
            $"p50 {Stats.Ms(added50)}, p99 {Stats.Ms(added99)} over the upstream's own {Stats.P50P99(direct)}",
            "p99 < 5 ms", added99 < 5);
        var cpuPerQuery = (throughCpu - directCpu) / rounds;
        ctx.Report.Add("DNS proxy: CPU per proxied query",
            $"{cpuPerQuery * 1e6:0} µs (process CPU, proxied minus direct) = {(cpuPerQuery > 0 ? 1 / cpuPerQuery : double.NaN):0} queries/s per core");

        // throughput: 16 stubs for a fixed time, the process pinned to one CPU
        var process = Process.GetCurrentProcess();
        var affinity = process.ProcessorAffinity;
        try
        {
            process.ProcessorAffinity = 1;
            var seconds = ctx.Short ? 2 : 10;
            var answered = await Concurrent(proxied, 16, TimeSpan.FromSeconds(seconds));
            ctx.Report.Add("DNS proxy: queries/s on one core (stubs, proxy and upstream on that core)", $"{answered / seconds:0} queries/s (16 concurrent stubs, {seconds} s)");
        }
        finally { process.ProcessorAffinity = affinity; }
    }

    public static int FreeUdpPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    public static (List<double> Ms, double CpuSeconds) Sequential(IPEndPoint server, int rounds, string name = Name)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(server);
        socket.ReceiveTimeout = 5000;
        var buffer = new byte[1500];
        var latencies = new List<double>(rounds);
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        for (var i = 0; i < rounds; i++)
        {
            var id = (ushort)(i + 1);
            var started = Stopwatch.GetTimestamp();
            socket.Send(DnsStub.Query(id, name));
            int n;
            do n = socket.Receive(buffer);
            while (BinaryPrimitives.ReadUInt16BigEndian(buffer) != id);
            latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            if ((buffer[3] & 0x0f) != 0 || n < 40) throw new InvalidOperationException($"bad answer (rcode {buffer[3] & 0x0f})");
        }
        return (latencies, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
    }

    private static async Task<long> Concurrent(IPEndPoint server, int stubs, TimeSpan duration)
    {
        long answered = 0;
        using var stop = new CancellationTokenSource(duration);
        var tasks = Enumerable.Range(0, stubs).Select(async s =>
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            socket.Connect(server);
            var buffer = new byte[1500];
            ushort id = 0;
            while (!stop.IsCancellationRequested)
            {
                id++;
                await socket.SendAsync(DnsStub.Query(id, Name), SocketFlags.None);
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                try
                {
                    while (true)
                    {
                        var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                        if (n >= 2 && BinaryPrimitives.ReadUInt16BigEndian(buffer) == id) break;
                    }
                    if (!stop.IsCancellationRequested) Interlocked.Increment(ref answered);
                }
                catch (OperationCanceledException) { /* lost datagram: ask again */ }
            }
        }).ToArray();
        await Task.WhenAll(tasks);
        return answered;
    }
}
