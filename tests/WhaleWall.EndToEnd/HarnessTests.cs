using System.Collections.Concurrent;
using System.Diagnostics;
using Docker.DotNet.Models;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.EndToEnd;

/// <summary>The harness itself, without WhaleWall: these must pass on any machine where the
/// end-to-end suite can run at all, so a matrix failure is never the harness' fault.</summary>
[Collection(E2eCollection.Name)]
public sealed class HarnessTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    [Fact]
    public Task Unlabeled_container_reaches_the_simulated_internet_over_tcp_and_udp() => fx.Run(output, async () =>
    {
        var c = await H.RunContainerAsync(fx.Name("smoke-plain"));
        var ns = await c.NsPathAsync();
        await fx.AssertTcpAllowed(ns, TestNet.Server1, TestNet.TcpPort);
        await fx.AssertTcpAllowed(ns, TestNet.Server2, TestNet.TcpPort);
        await fx.AssertUdpAllowed(ns, TestNet.Server1, TestNet.UdpPort);
        // a port nobody listens on is refused, not dropped: the probes tell the two apart
        Assert.Equal(ProbeOutcome.Refused, Probe.Tcp(ns, TestNet.Server1, 82, TimeSpan.FromSeconds(1)));
        await c.RemoveAsync();
    });

    [Fact]
    public Task Published_port_is_reachable_from_the_internet_and_from_host_loopback() => fx.Run(output, async () =>
    {
        var c = await H.RunContainerAsync(fx.Name("smoke-pub"), new ContainerOptions { PublishTcp = { [8080] = 18090 } });
        var server = await c.ListenTcpAsync(8080);
        await fx.AssertTcpAllowed(H.InternetNsPath, TestNet.HostLink4, 18090, TestNet.Client1);
        await fx.AssertTcpAllowed(H.InternetNsPath, TestNet.HostLink4, 18090, TestNet.Client2);
        Assert.Equal(GreetingOutcome.Greeted, E2eProbe.TcpGreeting(H.InternetNsPath, TestNet.HostLink4, 18090, sourceIp: TestNet.Client1));
        // loopback goes through docker-proxy
        Assert.Equal(GreetingOutcome.Greeted, E2eProbe.TcpGreeting(H.HostNsPath, "127.0.0.1", 18090));
        Assert.True(server.Accepted >= 4, $"server accepted {server.Accepted}");
        await c.RemoveAsync();
    });

    [Fact]
    public Task Docker_proxy_accepts_loopback_connections_even_when_the_container_does_not_listen() => fx.Run(output, async () =>
    {
        // This is why the localhost checks decide by data (E2eProbe), not by the handshake.
        var c = await H.RunContainerAsync(fx.Name("smoke-proxy"), new ContainerOptions { PublishTcp = { [8080] = 18091 } });
        await Task.Delay(200);
        var handshake = Probe.Tcp(H.HostNsPath, "127.0.0.1", 18091, TimeSpan.FromSeconds(1));
        var greeting = E2eProbe.TcpGreeting(H.HostNsPath, "127.0.0.1", 18091, TimeSpan.FromSeconds(1));
        output.WriteLine($"loopback to a published port with no listener: handshake {handshake}, data {greeting}");
        Assert.NotEqual(GreetingOutcome.Greeted, greeting);
        await c.RemoveAsync();
    });

    [Fact]
    public Task Containers_on_a_user_network_reach_each_other_without_whalewall() => fx.Run(output, async () =>
    {
        var net = fx.Name("smoke-net");
        await H.CreateNetworkAsync(net);
        var a = await H.RunContainerAsync(fx.Name("smoke-a"), new ContainerOptions { Network = net });
        var b = await H.RunContainerAsync(fx.Name("smoke-b"), new ContainerOptions { Network = net });
        await b.ListenTcpAsync(756);
        await fx.AssertTcpAllowed(await a.NsPathAsync(), await b.IpAsync(), 756);
        // bridged traffic must traverse the inet forward hook, or container-to-container rules are unenforceable
        var sysctl = Shell.Try("nsenter", "--net=" + H.HostNsPath, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables");
        output.WriteLine($"bridge-nf-call-iptables in the host namespace: {sysctl.Out.Trim()} {sysctl.Err.Trim()}");
        Assert.Equal("1", sysctl.Out.Trim());
        await a.RemoveAsync();
        await b.RemoveAsync();
    });

    /// <summary>WhaleWall's first-packet guarantee relies on Docker emitting `network connect`
    /// before `start`. Also records whether an inspect right after `network connect` already has
    /// the address.</summary>
    [Fact]
    public Task Docker_emits_network_connect_before_start() => fx.Run(output, async () =>
    {
        var events = new ConcurrentQueue<string>();
        string? ipSeenAtConnect = null;
        var name = fx.Name("smoke-events");
        using var cts = new CancellationTokenSource();
        var recorder = new InlineProgress(m =>
        {
            var who = m.Actor?.Attributes is { } attrs && attrs.TryGetValue("name", out var n) ? n : "";
            var container = m.Actor?.Attributes is { } a2 && a2.TryGetValue("container", out var cid) ? cid : m.Actor?.ID ?? "";
            events.Enqueue($"{m.Type} {m.Action} {who} {(container.Length >= 12 ? container[..12] : container)}");
            if (m.Type == "network" && m.Action == "connect" && ipSeenAtConnect is null)
            {
                try
                {
                    var i = H.Docker.Containers.InspectContainerAsync(container).GetAwaiter().GetResult();
                    ipSeenAtConnect = i.NetworkSettings?.Networks?.Values.FirstOrDefault()?.IPAddress ?? "";
                    events.Enqueue($"  inspect at connect: state {i.State?.Status}, pid {i.State?.Pid}, ip '{ipSeenAtConnect}'");
                }
                catch (Exception e) { events.Enqueue("  inspect failed: " + e.Message); }
            }
        });
        var since = DateTimeOffset.UtcNow.AddSeconds(-1).ToUnixTimeSeconds().ToString();
        var monitor = Task.Run(() => H.Docker.System.MonitorEventsAsync(new ContainerEventsParameters { Since = since }, recorder, cts.Token));
        await Task.Delay(300);

        var sw = Stopwatch.StartNew();
        var c = await H.RunContainerAsync(name, new ContainerOptions { Labels = E2eLabels.OptIn() });
        output.WriteLine($"run: {sw.ElapsedMilliseconds} ms");
        await Task.Delay(500);
        sw.Restart();
        await c.StopAsync();
        output.WriteLine($"stop: {sw.ElapsedMilliseconds} ms");
        sw.Restart();
        await c.RemoveAsync();
        output.WriteLine($"rm: {sw.ElapsedMilliseconds} ms");
        await Task.Delay(500);
        cts.Cancel();
        sw.Restart();
        try { await monitor; } catch (OperationCanceledException) { } catch (Exception e) { output.WriteLine("monitor: " + e.Message); }

        output.WriteLine($"monitor end: {sw.ElapsedMilliseconds} ms");
        var list = events.ToArray();
        foreach (var e in list) output.WriteLine(e);
        var connect = Array.FindIndex(list, e => e.StartsWith("network connect") && e.Contains(c.Id[..12]));
        var start = Array.FindIndex(list, e => e.StartsWith("container start") && e.Contains(c.Id[..12]));
        Assert.True(connect >= 0 && start >= 0, "both events expected:\n" + string.Join('\n', list));
        Assert.True(connect < start, "network connect should precede start:\n" + string.Join('\n', list));
        output.WriteLine($"ip at network connect: '{ipSeenAtConnect}'");
    });

    /// <summary>Delivers events on the reader's thread, in order (Progress&lt;T&gt; would not).</summary>
    private sealed class InlineProgress(Action<Message> onReport) : IProgress<Message>
    {
        public void Report(Message value) => onReport(value);
    }
}
