using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>What an address WhaleWall has not classified does on a network that holds a managed
/// container while the daemon is stopped (issue 13, `WHALEWALL_WHEN_DOWN`): strict (the
/// default) keeps it dropped until the daemon is back and classifies it; lenient lets the
/// networks' guards lapse a lease after the daemon stops (the running daemon renews them).</summary>
[Collection(E2eCollection.Name)]
public sealed class BindingWhenDownTests(E2eFixture fx, ITestOutputHelper output)
{
    private const string Rules = "output:\n  - ips: [" + Server1 + "]\n    proto: tcp\n    dst_ports: [80]\n";

    private static ContainerOptions OptedIn() => new() { Labels = E2eLabels.OptIn(Rules) };

    [Fact]
    public Task Strict_an_unknown_container_started_while_the_daemon_is_down_stays_dropped_until_it_is_classified() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var managed = await fx.StartedAsync("wd-managed", OptedIn()); // the network is guarded now
        await fx.AssertTcpAllowed(managed.Ns, Server1, TcpPort);

        await fx.Daemon.StopAsync();
        try
        {
            var stranger = await fx.StartedAsync("wd-stranger", waitManaged: false); // no labels: unmanaged
            // strict: nothing classifies it while the daemon is down, however long
            for (var i = 0; i < 4; i++)
            {
                fx.AssertTcpDroppedWithArp(stranger.Ns, Server1, TcpPort, what: $"(unknown, daemon down, try {i + 1})");
                await Task.Delay(1000);
            }
            await fx.AssertTcpAllowed(managed.Ns, Server1, TcpPort, what: "(bound container, daemon down)");

            await fx.StartDaemonAgainAsync();
            // classified as knowingly unmanaged on its own port: it goes
            await fx.AssertTcpAllowed(stranger.Ns, Server1, TcpPort, what: "(classified after the daemon came back)");
            await fx.AssertTcpAllowed(stranger.Ns, Server2, TcpPort, what: "(unmanaged: anything)");
            await stranger.C.RemoveAsync();
        }
        finally
        {
            await fx.StartDaemonAgainAsync();
            await managed.C.RemoveAsync();
        }
    });

    [Fact]
    public Task Lenient_guards_are_renewed_while_the_daemon_runs_and_lapse_after_it_stops() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        await fx.Daemon.StopAsync();
        fx.Daemon.ExtraEnvironment["WHALEWALL_WHEN_DOWN"] = "lenient";
        fx.Daemon.ExtraEnvironment["WHALEWALL_GUARD_LEASE"] = "3";
        (TestContainer C, string Ns, string Ip)? managed = null;
        try
        {
            await fx.StartDaemonAgainAsync();
            managed = await fx.StartedAsync("wl-managed", OptedIn());
            var bridge = new KernelTable(fx.Daemon.HostNsPath, fx.Daemon.Table, "bridge");
            var guards = await E2eProcess.Eventually(() => bridge.Elements("guard4").Count > 0, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200));
            Assert.True(guards, "no guard for the managed container's network\n" + fx.BridgeTableText());
            // three leases later the running daemon has kept them
            await Task.Delay(TimeSpan.FromSeconds(9));
            Assert.True(bridge.Elements("guard4").Count > 0, "the running daemon let its guards lapse\n" + fx.BridgeTableText());

            await fx.Daemon.StopAsync();
            var stranger = await fx.StartedAsync("wl-stranger", waitManaged: false);
            // lenient: once the lease lapses, an unknown container passes the bridge table (unmanaged)
            await fx.AssertTcpAllowed(stranger.Ns, Server1, TcpPort, what: "(unknown, daemon down, lease lapsed)");
            Assert.Empty(bridge.Elements("guard4"));
            // a bound container stays bound: still only its policy
            fx.AssertTcpDropped(managed.Value.Ns, Server2, TcpPort, what: "(bound container, daemon down)");
            await stranger.C.RemoveAsync();
        }
        finally
        {
            await fx.Daemon.StopAsync();
            fx.Daemon.ExtraEnvironment.Remove("WHALEWALL_WHEN_DOWN");
            fx.Daemon.ExtraEnvironment.Remove("WHALEWALL_GUARD_LEASE");
            await fx.StartDaemonAgainAsync();
            if (managed is { } m) await m.C.RemoveAsync();
        }
    });
}
