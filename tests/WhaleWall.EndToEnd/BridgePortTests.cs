using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Docker.DotNet.Models;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Kernel.Netlink;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.EndToEnd;

/// <summary>How WhaleWall can learn a container's bridge port from what it sees (Docker's
/// events and API, netlink from the host namespace): reacts to each <c>network connect</c> as
/// the daemon would (network inspect for the endpoint's MAC, then netlink lookups by MAC) and
/// measures when the port becomes findable, against when the container's process started.
/// Needs no WhaleWall daemon.</summary>
[Collection(E2eCollection.Name)]
public sealed class BridgePortTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private sealed record Lookup(string ContainerId, string Name, string Bridge, BridgePort? Port, int Lookups,
        double EventToNetworkInspectedMs, double EventToPortFoundMs, long FoundAt, string? Error);

    [Fact]
    public Task The_port_is_found_by_the_endpoints_mac_and_agrees_with_the_sandbox() => fx.Run(output, async () =>
    {
        const int perNetwork = 6;
        var net = fx.Name("bport");
        var netId = await H.CreateNetworkAsync(net);
        using var ports = new BridgePorts(H.HostNsPath);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var received = Channel.CreateUnbounded<(Message Event, long At)>();
        var watch = Task.Run(() => H.Docker.System.MonitorEventsAsync(new ContainerEventsParameters
        {
            Since = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(),
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["type"] = new Dictionary<string, bool> { ["network"] = true },
                ["event"] = new Dictionary<string, bool> { ["connect"] = true },
            },
        }, new Progress(m => received.Writer.TryWrite((m, Stopwatch.GetTimestamp()))), cts.Token));

        var lookups = new List<Lookup>();
        var bridges = new Dictionary<string, string>();
        var consumer = Task.Run(async () =>
        {
            await foreach (var (e, at) in received.Reader.ReadAllAsync(cts.Token))
            {
                if (e.Actor?.Attributes?.TryGetValue("container", out var cid) != true || cid is null) continue;
                lookups.Add(await LookUp(ports, bridges, e.Actor.ID, cid, at));
                if (lookups.Count >= 2 * perNetwork) return;
            }
        });
        // the container's first action: note when it runs (seconds since boot, 10 ms resolution)
        string[] cmd = ["sh", "-c", "cat /proc/uptime > /started; trap 'exit 0' TERM; sleep 3600 & wait"];
        for (var i = 0; i < perNetwork; i++)
        {
            await H.RunContainerAsync(fx.Name($"bp-default-{i}"), new ContainerOptions { Cmd = cmd });
            await H.RunContainerAsync(fx.Name($"bp-user-{i}"), new ContainerOptions { Network = net, Cmd = cmd });
        }
        var done = await Task.WhenAny(consumer, Task.Delay(TimeSpan.FromSeconds(60)));
        await cts.CancelAsync();
        try { await watch; } catch (OperationCanceledException) { } catch (IOException) { }
        Assert.Same(consumer, done);

        // once started (the container inspect waits for `docker start` to finish), the sandbox
        // key and the init pid name the same port; and when did the process start?
        var margins = new List<double>();
        foreach (var l in lookups)
        {
            output.WriteLine(l.ToString());
            Assert.Null(l.Error);
            var c = await H.Docker.Containers.InspectContainerAsync(l.ContainerId);
            Assert.Equal(l.Port!.Index, ports.Find(c.NetworkSettings.SandboxKey, l.Bridge)?.Index);
            Assert.Equal(l.Port.Index, ports.FindByPid((int)c.State.Pid, l.Bridge)?.Index);
            margins.Add(CommandRanAt((int)c.State.Pid) - Stopwatch.GetElapsedTime(0, l.FoundAt).TotalMilliseconds);
        }
        static string P(IEnumerable<double> xs) { var l = xs.Order().ToList(); return $"min {l[0]:0} ms, p50 {l[l.Count / 2]:0} ms, max {l[^1]:0} ms"; }
        output.WriteLine($"{lookups.Count} connect events; the port was found by MAC after: {P(lookups.Select(l => l.EventToPortFoundMs))}; " +
            $"network inspect took {P(lookups.Select(l => l.EventToNetworkInspectedMs))}; " +
            $"the container's command ran after the port was found by: {P(margins)} (10 ms clock; negative = before)");
        Assert.Contains(lookups, l => l.Bridge == "docker0");
        Assert.Contains(lookups, l => l.Bridge == "br-" + netId[..12]);
    });

    private async Task<Lookup> LookUp(BridgePorts ports, Dictionary<string, string> bridges, string networkId, string containerId, long at)
    {
        double Since(long t) => Stopwatch.GetElapsedTime(at, t).TotalMilliseconds;
        try
        {
            // what the event and the network tell (a network inspect takes no container lock;
            // a container inspect would wait until `docker start` has finished)
            var network = await H.Docker.Networks.InspectNetworkAsync(networkId);
            var inspected = Stopwatch.GetTimestamp();
            if (!bridges.TryGetValue(networkId, out var bridge))
                bridges[networkId] = bridge = network.Options is { } o && o.TryGetValue("com.docker.network.bridge.name", out var name) ? name : "br-" + networkId[..12];
            if (network.Containers?.TryGetValue(containerId, out var endpoint) != true || endpoint is null)
                return new(containerId, "?", bridge, null, 0, Since(inspected), -1, 0, "endpoint not in the network inspect");
            // woken by the kernel's link notifications, as the daemon would be
            var port = ports.WaitForMac(bridge, endpoint.MacAddress, TimeSpan.FromSeconds(5));
            var now = Stopwatch.GetTimestamp();
            return port is null
                ? new(containerId, endpoint.Name, bridge, null, 1, Since(inspected), -1, 0, "no single port with the endpoint's MAC within 5 s")
                : new(containerId, endpoint.Name, bridge, port, 1, Since(inspected), Since(now), now, null);
        }
        catch (Exception e) { return new(containerId, "?", "?", null, 0, -1, -1, 0, e.Message); }
    }

    /// <summary>When the container's command ran, on Stopwatch's clock (CLOCK_MONOTONIC), in ms:
    /// it wrote /proc/uptime (CLOCK_BOOTTIME, 10 ms resolution) into /started as its first act.</summary>
    private static double CommandRanAt(int pid)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        string text;
        while ((text = File.Exists($"/proc/{pid}/root/started") ? File.ReadAllText($"/proc/{pid}/root/started") : "").Length == 0)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the container did not write /started");
            Thread.Sleep(10);
        }
        var uptimeMs = double.Parse(text.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1000;
        clock_gettime(7 /* CLOCK_BOOTTIME */, out var boot);
        clock_gettime(1 /* CLOCK_MONOTONIC */, out var mono);
        var bootMinusMonoMs = (boot.Sec - mono.Sec) * 1000.0 + (boot.Nsec - mono.Nsec) / 1e6;
        return uptimeMs - bootMinusMonoMs;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Sec; public long Nsec; }

    [DllImport("libc")] private static extern int clock_gettime(int clock, out Timespec ts);

    private sealed class Progress(Action<Message> on) : IProgress<Message>
    {
        public void Report(Message value) => on(value);
    }
}
