using System.Diagnostics;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 15, "a daemon restart does not break resolution for longer than the restart
/// itself, and learned addresses survive it": the proxy's learned addresses are kept in
/// <c>learned.json</c> by container ID and carried in the start-up transaction with what is left
/// of their timeouts (docs/dns-proxy.md "Restart"). A wildcard rule is used so that only the
/// proxy can have opened the address (the daemon never resolves wildcards itself).</summary>
[Collection(E2eCollection.Name)]
public sealed class DnsProxyRestartTests(E2eFixture fx, ITestOutputHelper output)
{
    private const int Ttl = 30;   // + the fixture's 2 s grace: the kernel keeps the address 32 s
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    private DockerHarness H => fx.Harness;

    [Fact]
    public Task Learned_addresses_survive_a_daemon_restart_resolution_comes_back_with_it_and_they_still_expire() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        const string name = "app.keep.test.example", other = "other.keep.test.example";
        fx.Dns.Set(name, Ttl, Server1);
        fx.Dns.Set(other, Ttl, Server2);
        var c = await fx.StartedAsync("keep", new ContainerOptions
        {
            Labels = E2eLabels.OptIn("""
                output:
                  - hosts: ["*.keep.test.example"]
                    proto: tcp
                    dst_ports: [80]
                """),
        });
        fx.AssertTcpDropped(c.Ns, Server1, TcpPort, what: "(nothing looked up yet)");

        var reply = DnsStub.Ask(c.Ns, Dns, 53, name);
        var learnedAt = DateTime.UtcNow;
        Assert.True(reply is { Rcode: 0, Addresses: [Server1] }, $"{name}: {reply?.Rcode} {string.Join(",", reply?.Addresses ?? [])}");
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(c.Ns, Guard(Server1), TcpPort, TimeSpan.FromSeconds(2)));

        // the restart: SIGTERM, then a new process; the container asks nothing meanwhile
        var down = Stopwatch.StartNew();
        Assert.True(await fx.Daemon.StopAsync(), "the daemon should stop on SIGTERM");
        var stopped = down.Elapsed;
        var start = Stopwatch.StartNew();
        await fx.StartDaemonAgainAsync();
        var ready = start.Elapsed;
        output.WriteLine($"restart: stop {stopped.TotalMilliseconds:F0} ms, start until \"initial sync complete\" {ready.TotalMilliseconds:F0} ms; " +
            $"{(DateTime.UtcNow - learnedAt).TotalSeconds:F1} s after the lookup");
        Assert.True(DateTime.UtcNow - learnedAt < TimeSpan.FromSeconds(Ttl - 5),
            "the restart took so long that the learned address may have expired: the test proves nothing");

        var kept = fx.Daemon.LogTail(400).Split('\n').LastOrDefault(l => l.Contains("learned DNS addresses kept from before the restart"));
        output.WriteLine(kept ?? "(the daemon did not say it kept learned addresses)");

        // at once, one try, no lookup before it: the start-up transaction carried the address
        var outcome = Probe.Tcp(c.Ns, Guard(Server1), TcpPort, TimeSpan.FromSeconds(2));
        Assert.True(outcome == ProbeOutcome.Connected,
            $"{Server1} (learned for {name} before the restart) right after the restart: {outcome}\n{fx.TableText()}");

        // resolution: back as soon as the daemon is (the redirect stays while it is down). First
        // a name the container may not resolve (answered REFUSED at once, nothing to commit): when
        // the proxy listens again; then an allowed one, whose answer also waits for the kernel
        // commit of the address it opens
        DnsStub.Reply? refused = null;
        var tries = 0;
        while (start.Elapsed < ready + TimeSpan.FromSeconds(20))
        {
            tries++;
            refused = DnsStub.Ask(c.Ns, Dns, 53, "not.allowed.example.test", timeout: TimeSpan.FromMilliseconds(250));
            if (refused is not null) break;
        }
        var listening = start.Elapsed;
        var again = DnsStub.Ask(c.Ns, Dns, 53, other, timeout: TimeSpan.FromSeconds(5));
        var resolved = start.Elapsed;
        output.WriteLine($"the proxy answered again {listening.TotalMilliseconds:F0} ms after the new process started, " +
            $"{(listening - ready).TotalMilliseconds:F0} ms after its \"initial sync complete\" ({tries} tries of 250 ms); " +
            $"an allowed name {(resolved - listening).TotalMilliseconds:F0} ms later (upstream + commit); " +
            $"resolution was down {(stopped + listening).TotalMilliseconds:F0} ms in all (stop + start)");
        Assert.Equal(5, refused?.Rcode);
        Assert.True(again is { Rcode: 0, Addresses: [Server2] }, $"{other} after the restart: {again?.Rcode}");
        Assert.True(listening - ready < TimeSpan.FromSeconds(2), $"the proxy answered only {(listening - ready).TotalMilliseconds:F0} ms after the daemon was up");
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(c.Ns, Guard(Server2), TcpPort, TimeSpan.FromSeconds(2)));

        // the restored address still expires as it would have: TTL + grace after its lookup
        var expiry = learnedAt + TimeSpan.FromSeconds(Ttl) + Grace;
        var beforeExpiry = expiry - TimeSpan.FromSeconds(4) - DateTime.UtcNow;
        if (beforeExpiry > TimeSpan.Zero) await Task.Delay(beforeExpiry);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(c.Ns, Guard(Server1), TcpPort, TimeSpan.FromSeconds(2)));
        var afterExpiry = expiry + TimeSpan.FromSeconds(3) - DateTime.UtcNow;
        if (afterExpiry > TimeSpan.Zero) await Task.Delay(afterExpiry);
        fx.AssertTcpDropped(c.Ns, Server1, TcpPort, what: $"({name} learned before the restart, TTL {Ttl} s + grace {Grace.TotalSeconds:0} s later)");
        Assert.DoesNotContain(fx.Table.ElementsMentioning(c.Ip), e => e.Element.Contains(Server1));
        await c.C.RemoveAsync();
    });
}
