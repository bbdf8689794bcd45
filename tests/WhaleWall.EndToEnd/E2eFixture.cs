using System.Diagnostics;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.EndToEnd;

[CollectionDefinition(Name)]
public sealed class E2eCollection : ICollectionFixture<E2eFixture>
{
    public const string Name = "e2e";
}

/// <summary>
/// One private dockerd + simulated internet for the whole end-to-end collection, with the
/// internet's services running, and the daemon under test started on first use.
/// </summary>
public sealed class E2eFixture : IAsyncLifetime
{
    public static readonly TimeSpan DeniedTimeout = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan AllowedWithin = TimeSpan.FromSeconds(10);

    public DockerHarness Harness { get; } = new();
    public WhaleWallDaemon Daemon { get; private set; } = null!;
    public KernelTable Table => Daemon.KernelTable();
    public TcpServer Server1Http { get; private set; } = null!;
    public TcpServer Server1Other { get; private set; } = null!;
    public TcpServer Server2Http { get; private set; } = null!;
    public UdpEchoServer Server1Udp { get; private set; } = null!;
    public UdpEchoServer Server1UdpOther { get; private set; } = null!;
    public List<string> Diagnostics { get; } = new();

    private readonly SemaphoreSlim _daemonGate = new(1, 1);
    private Exception? _daemonStartFailure;
    private int _names;

    private int _disposed;
    private readonly bool _withDns;

    /// <summary>The test DNS server (198.19.0.53) the daemon resolves hostname rules with.</summary>
    public TestDnsServer Dns { get; private set; } = null!;

    public E2eFixture() : this(withDns: true) { }

    internal E2eFixture(bool withDns) => _withDns = withDns;

    public async Task InitializeAsync()
    {
        // SIGTERM to the test host (e.g. a timeout) still tears everything down
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { DisposeAsync().Wait(TimeSpan.FromSeconds(30)); } catch { }
        };
        Harness.Log = m => { lock (Diagnostics) Diagnostics.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {m}"); };
        // the probes wait synchronously on pool threads; on 2 cores the pool starts with 2 and adds
        // more slowly, which delayed the test servers' answers by seconds
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 16), Math.Max(io, 16));
        await Harness.InitializeAsync();
        Server1Http = Harness.InternetTcpServer(TestNet.Server1, TestNet.TcpPort);
        Server1Other = Harness.InternetTcpServer(TestNet.Server1, TestNet.TcpPortOther);
        Server2Http = Harness.InternetTcpServer(TestNet.Server2, TestNet.TcpPort);
        Server1Udp = Harness.InternetUdpServer(TestNet.Server1, TestNet.UdpPort);
        Server1UdpOther = Harness.InternetUdpServer(TestNet.Server1, TestNet.UdpPortOther);
        Daemon = WhaleWallDaemon.For(Harness);
        if (_withDns)
        {
            Dns = TestDnsServer.Start(Harness.InternetNsPath, TestNet.Dns);
            Daemon.ExtraEnvironment["WHALEWALL_DNS_SERVERS"] = TestNet.Dns;
            Daemon.ExtraEnvironment["WHALEWALL_DNS_MIN_TTL"] = "1";
            Daemon.ExtraEnvironment["WHALEWALL_DNS_GRACE"] = "2";
        }
        // inside the harness' host namespace: only reachable from there (MetricsScrape)
        Daemon.ExtraEnvironment["WHALEWALL_METRICS_ADDR"] = MetricsAddress;
        // lets HealingTests break the kernel port on purpose (nothing happens without the control file)
        Daemon.ExtraEnvironment["WHALEWALL_TEST_FAULTS"] = "1";
    }

    /// <summary>Where the daemon under test serves /metrics and /healthz, in the harness' host namespace.</summary>
    public const string MetricsAddress = "127.0.0.1:50000";

    public Task<(int Status, string Body)> HttpGetAsync(string path) =>
        MetricsScrape.GetAsync(Harness.HostNsPath, MetricsAddress, path);

    public async Task<List<PromSample>> ScrapeAsync()
    {
        var (status, body) = await HttpGetAsync("/metrics");
        Assert.True(status == 200, $"/metrics answered {status}: {body}");
        return MetricsScrape.Parse(body);
    }

    public async Task DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        if (Daemon is not null) await Daemon.StopAsync();
        Dns?.Dispose();
        await Harness.DisposeAsync();
        Console.WriteLine($"[e2e] harness start {Harness.StartupTime.TotalSeconds:F1} s, stop {Harness.ShutdownTime.TotalSeconds:F1} s");
    }

    /// <summary>Runs a container and, unless told otherwise, waits until the daemon has
    /// programmed its address, so a denied probe cannot pass vacuously.</summary>
    public async Task<(TestContainer C, string Ns, string Ip)> StartedAsync(string hint, ContainerOptions? options = null, bool waitManaged = true)
    {
        var c = await Harness.RunContainerAsync(Name(hint), options);
        var ip = await c.IpAsync();
        if (waitManaged) await Table.WaitManaged(ip);
        return (c, await c.NsPathAsync(), ip);
    }

    /// <summary>Waits until the daemon's own report (<c>daemon.json</c>) shows the container
    /// enforced and bound to its port on every network: a managed element alone may still be a
    /// removed container's, on an address Docker handed on before the daemon saw the removal.
    /// Only a report written by the daemon running now counts: right after a restart the file
    /// is still the previous process' (and `status` then reads the journal instead).</summary>
    public async Task WaitEnforcedAsync(string containerId, TimeSpan? timeout = null)
    {
        var path = Path.Combine(Daemon.DataDir, "daemon.json");
        string last = "";
        var ok = await E2eProcess.Eventually(() =>
        {
            try
            {
                last = File.ReadAllText(path);
                var report = System.Text.Json.Nodes.JsonNode.Parse(last)!;
                if (report["pid"]?.GetValue<int>() != Daemon.Pid) return false;
                var c = report["containers"]!.AsArray().FirstOrDefault(c => c!["id"]!.GetValue<string>() == containerId);
                return c?["state"]?.GetValue<string>() == "enforced" &&
                       c["networks"]!.AsArray().All(n => n!["binding"]?.GetValue<string>() != "unbound");
            }
            catch (Exception e) when (e is IOException or System.Text.Json.JsonException or NullReferenceException) { return false; }
        }, timeout ?? AllowedWithin, TimeSpan.FromMilliseconds(100));
        Assert.True(ok, $"container {containerId[..12]} not enforced and bound in the daemon's report:\n{last}");
    }

    /// <summary>Makes the daemon's kernel port misbehave (see src/Host/FaultInjection.cs).</summary>
    public void InjectFaults(params string[] commands) =>
        File.WriteAllLines(Path.Combine(Daemon.DataDir, "test-faults"), commands);

    /// <summary>A container name unique within this harness.</summary>
    public string Name(string hint) => $"{hint}-{Interlocked.Increment(ref _names)}";

    /// <summary>Makes sure the daemon runs (starting it if a previous test stopped it). A start
    /// failure is remembered, so later tests fail at once with the same reason.</summary>
    public async Task EnsureDaemonAsync()
    {
        await _daemonGate.WaitAsync();
        try
        {
            if (_daemonStartFailure is not null)
                throw new InvalidOperationException("the daemon under test could not be started earlier: " + _daemonStartFailure.Message, _daemonStartFailure);
            if (Daemon.IsRunning) return;
            try
            {
                await Daemon.StartAsync();
                Harness.Log($"whalewall up in {Daemon.LastStartTime.TotalMilliseconds:F0} ms");
            }
            catch (Exception e)
            {
                _daemonStartFailure = e;
                throw;
            }
        }
        finally { _daemonGate.Release(); }
    }

    /// <summary>Restart after a deliberate stop (clears a remembered failure).</summary>
    public async Task StartDaemonAgainAsync()
    {
        _daemonStartFailure = null;
        await EnsureDaemonAsync();
    }

    // ------------------------------------------------------------------ assertions

    public async Task AssertTcpAllowed(string nsPath, string ip, int port, string? sourceIp = null, string what = "")
    {
        ProbeOutcome last = ProbeOutcome.TimedOut;
        var ok = await E2eProcess.Eventually(() =>
        {
            last = Probe.Tcp(nsPath, TestNet.Guard(ip), port, TimeSpan.FromSeconds(1), sourceIp);
            return last == ProbeOutcome.Connected;
        }, AllowedWithin, TimeSpan.FromMilliseconds(200));
        Assert.True(ok, $"expected tcp {sourceIp ?? "?"} -> {ip}:{port} to connect {what}, last outcome {last}\n{TableText()}");
    }

    public void AssertTcpDropped(string nsPath, string ip, int port, string? sourceIp = null, string what = "")
    {
        var outcome = Probe.Tcp(nsPath, TestNet.Guard(ip), port, DeniedTimeout, sourceIp);
        Assert.True(outcome == ProbeOutcome.TimedOut,
            $"expected tcp {sourceIp ?? "?"} -> {ip}:{port} to be dropped (time out) {what}, got {outcome}{SocketErrorText()}\n{TableText()}");
    }

    /// <summary>As <see cref="AssertTcpDropped"/>, for a source whose every frame the bridge table
    /// drops, its ARP requests included: its own kernel then never learns the gateway, and may end
    /// the attempt with "no route to host" once that lookup fails (when it fails while this
    /// attempt's SYN waits for it). That is the drop seen from inside; a connection or a reset is not.</summary>
    public void AssertTcpDroppedWithArp(string nsPath, string ip, int port, string what = "")
    {
        var outcome = Probe.Tcp(nsPath, TestNet.Guard(ip), port, DeniedTimeout);
        Assert.True(outcome == ProbeOutcome.TimedOut || Probe.LastError == System.Net.Sockets.SocketError.HostUnreachable,
            $"expected tcp -> {ip}:{port} to be dropped (time out, or no route to the unresolved gateway) {what}, got {outcome}{SocketErrorText()}\n{BridgeTableText()}");
    }

    /// <summary>The socket error that ended the calling thread's last probe, for a message.</summary>
    private static string SocketErrorText() => Probe.LastError is { } e ? $" ({e})" : "";

    public async Task AssertUdpAllowed(string nsPath, string ip, int port, string what = "")
    {
        var ok = await E2eProcess.Eventually(() => Probe.UdpEcho(nsPath, TestNet.Guard(ip), port, TimeSpan.FromSeconds(1)),
            AllowedWithin, TimeSpan.FromMilliseconds(200));
        Assert.True(ok, $"expected udp echo from {ip}:{port} {what}\n{TableText()}");
    }

    public void AssertUdpDropped(string nsPath, string ip, int port, string what = "")
    {
        Assert.False(Probe.UdpEcho(nsPath, TestNet.Guard(ip), port, DeniedTimeout),
            $"expected udp to {ip}:{port} to be dropped {what}\n{TableText()}");
    }

    /// <summary>Runs independent denied probes concurrently (each takes the full timeout).</summary>
    public static Task All(params Action[] checks) => Task.WhenAll(checks.Select(c => Task.Run(c)));

    public string TableText()
    {
        try { return Daemon is null ? "" : Daemon.KernelTable().ListText(); }
        catch (Exception e) { return "(table unreadable: " + e.Message + ")"; }
    }

    public string BridgeTableText()
    {
        try { return Daemon is null ? "" : new KernelTable(Daemon.HostNsPath, Daemon.Table, "bridge").ListText(); }
        catch (Exception e) { return "(table unreadable: " + e.Message + ")"; }
    }

    /// <summary>Runs a test body; on failure writes the daemon log, the table and the harness
    /// diagnostics to the test output.</summary>
    public async Task Run(ITestOutputHelper output, Func<Task> body)
    {
        var sw = Stopwatch.StartNew();
        try
        {
            await body();
            output.WriteLine($"passed in {sw.ElapsedMilliseconds} ms");
        }
        catch
        {
            output.WriteLine($"failed after {sw.ElapsedMilliseconds} ms");
            lock (Diagnostics) foreach (var d in Diagnostics) output.WriteLine(d);
            output.WriteLine("---- nft table ----");
            output.WriteLine(TableText());
            output.WriteLine("---- nft bridge table (binding) ----");
            output.WriteLine(BridgeTableText());
            output.WriteLine("---- whalewall log (tail) ----");
            output.WriteLine(Daemon?.LogTail(120) ?? "");
            output.WriteLine("---- dockerd log (tail) ----");
            output.WriteLine(Harness.DockerdLogTail(20));
            throw;
        }
    }
}
