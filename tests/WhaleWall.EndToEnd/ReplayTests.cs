using System.Text.Json.Nodes;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>
/// Issue 12, points 3 and 7, with real packets, on the deny-by-default daemon of
/// <see cref="GatewayFixture"/> (GATEWAY_NETWORKS=gw, DEFAULT_OUTBOUND=_dns_,198.19.0.11, a UDP
/// echo server on the test resolver 198.19.0.53:53): the journal alone rebuilds `_dns_` and the
/// gateway neighbours while Docker is unreachable; a restart with nothing changed writes nothing;
/// a container that rewrites its own resolv.conf opens nothing new.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class ReplayTests(GatewayFixture gfx, ITestOutputHelper output)
{
    private const int SIGCONT = 18, SIGSTOP = 19;
    private E2eFixture fx => gfx.Inner;
    private DockerHarness H => fx.Harness;

    private Task<(TestContainer C, string Ns, string Ip)> OnGateway(string hint, bool ownDns = true, Dictionary<string, string>? labels = null) =>
        fx.StartedAsync(hint, new ContainerOptions { Network = GatewayFixture.GatewayNetwork, OwnDns = ownDns, Labels = labels ?? [] });

    private long JournalSequenceNr()
    {
        var (code, json, err) = fx.Daemon.Cli("status", "--json");
        Assert.True(code == 0, $"status failed ({code}): {err}");
        return JsonNode.Parse(json)!["journal_sequence_nr"]!.GetValue<long>();
    }

    private string LogSinceLastStart()
    {
        using var fs = new FileStream(fx.Daemon.LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var text = new StreamReader(fs).ReadToEnd();
        return text[text.LastIndexOf("starting whalewall run", StringComparison.Ordinal)..];
    }

    private void NoTable() => Shell.Try("nsenter", "--net=" + H.HostNsPath, "nft", "delete", "table", "inet", fx.Daemon.Table);

    /// <summary>
    /// Docker made unreachable the way that keeps the containers exactly as they are: dockerd is
    /// frozen (SIGSTOP, by pid) and its socket moved aside, so connecting fails with "no such file"
    /// as after `systemctl stop docker`, while the containers' processes, namespaces and veths stay
    /// (a stopped dockerd would take them down unless live-restore is on; the harness does not
    /// run it so). Undone by <see cref="ThawDocker"/>.
    /// </summary>
    private (int Pid, string Away) FreezeDocker()
    {
        var pid = E2eProcess.ReadPidFile(H.DockerPidFile);
        Assert.True(pid > 0 && E2eProcess.IsAlive(pid), $"dockerd pid {pid} from {H.DockerPidFile}");
        Assert.True(E2eProcess.Signal(pid, SIGSTOP), "SIGSTOP dockerd");
        var away = H.DockerSocket + ".away";
        File.Move(H.DockerSocket, away);
        H.Log($"dockerd {pid} frozen, socket moved to {away}");
        return (pid, away);
    }

    private void ThawDocker((int Pid, string Away) frozen)
    {
        if (File.Exists(frozen.Away) && !File.Exists(H.DockerSocket)) File.Move(frozen.Away, H.DockerSocket);
        E2eProcess.Signal(frozen.Pid, SIGCONT);
        H.Log($"dockerd {frozen.Pid} thawed");
    }

    [Fact]
    public Task Restart_with_Docker_unreachable_keeps_dns_and_gateway_neighbours_from_the_journal() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        // a: no --dns (its resolver is the engine's configured DNS, from daemon.json); b: --dns
        var a = await OnGateway("replay-a", ownDns: false);
        var b = await OnGateway("replay-b");
        using var inA = await a.C.ListenTcpAsync(7001);
        using var inB = await b.C.ListenTcpAsync(7000);
        // an address on the gateway network that WhaleWall does not manage (added by the test to a's
        // interface): deny-by-default drops what it sends
        var stranger = string.Join('.', a.Ip.Split('.')[..3]) + ".250";
        Shell.Run("nsenter", "--net=" + a.Ns, "ip", "addr", "add", Guard(stranger) + "/24", "dev", "eth0");

        async Task Check(string when)
        {
            await fx.AssertUdpAllowed(a.Ns, Dns, 53, what: $"(_dns_ from daemon.json, {when})");
            await fx.AssertUdpAllowed(b.Ns, Dns, 53, what: $"(_dns_ from --dns, {when})");
            await fx.AssertTcpAllowed(a.Ns, b.Ip, 7000, sourceIp: a.Ip, what: $"(gateway neighbour, {when})");
            await fx.AssertTcpAllowed(b.Ns, a.Ip, 7001, what: $"(gateway neighbour, other way, {when})");
            await E2eFixture.All(
                () => fx.AssertTcpDropped(a.Ns, Server1, TcpPort, sourceIp: a.Ip, what: $"(not in DEFAULT_OUTBOUND, {when})"),
                () => fx.AssertUdpDropped(a.Ns, Server1, UdpPort, what: $"(udp elsewhere, {when})"),
                () => fx.AssertTcpDropped(a.Ns, b.Ip, 7000, sourceIp: stranger, what: $"(unmanaged address on the gateway network, {when})"));
        }

        await Check("before the restart");
        await Task.Delay(1500); // the last Docker events are checkpointed
        Assert.True(await fx.Daemon.StopAsync(), "the daemon should stop on SIGTERM");

        var frozen = FreezeDocker();
        try
        {
            // the table goes too, so what follows is rebuilt from the journal alone
            NoTable();
            Assert.False(fx.Table.Exists(), "the table should be gone");
            await fx.Daemon.StartAsync(TimeSpan.FromSeconds(30));
            output.WriteLine($"restart with Docker unreachable: table in {fx.Daemon.LastStartTime.TotalMilliseconds:F0} ms");
            Assert.True(fx.Daemon.LastStartTime < TimeSpan.FromSeconds(20),
                $"start-up took {fx.Daemon.LastStartTime.TotalSeconds:F1} s: it waited for Docker");
            Assert.True(await E2eProcess.Eventually(() => LogSinceLastStart().Contains("cannot list containers"), TimeSpan.FromSeconds(10)),
                "the daemon should have found Docker unreachable");

            await Check("Docker unreachable");
            Assert.Contains("cannot list containers", LogSinceLastStart()); // still unreachable throughout
            Assert.True(E2eProcess.IsAlive(frozen.Pid) && !File.Exists(H.DockerSocket), "Docker stayed unreachable");
        }
        finally
        {
            ThawDocker(frozen);
        }

        // Docker back: a restart reconciles at once (the daemon would reconnect by itself, after its backoff)
        await fx.Daemon.StopAsync();
        await fx.StartDaemonAgainAsync();
        var c = await OnGateway("replay-c");
        await fx.AssertUdpAllowed(c.Ns, Dns, 53, what: "(after Docker is back)");
        await Check("after Docker is back");
        foreach (var x in new[] { a.C, b.C, c.C }) await x.RemoveAsync();
    });

    [Fact]
    public Task A_restart_with_nothing_changed_writes_nothing_to_the_journal() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var a = await OnGateway("same-a", ownDns: false);
        var b = await OnGateway("same-b", labels: new() { ["dockerwall.outbound"] = "_dns_" });
        var plain = await fx.StartedAsync("same-plain", new ContainerOptions { PublishTcp = { [8080] = 18080 } }, waitManaged: false);
        await Task.Delay(2500); // every container recorded, the last Docker events checkpointed
        Assert.True(await fx.Daemon.StopAsync(), "the daemon should stop on SIGTERM");
        var before = JournalSequenceNr();

        await fx.StartDaemonAgainAsync();
        Assert.True(await E2eProcess.Eventually(() => LogSinceLastStart().Contains("reconciling"), TimeSpan.FromSeconds(20)),
            "the daemon never reconciled with Docker");
        await fx.AssertUdpAllowed(a.Ns, Dns, 53, what: "(after the restart)");
        await Task.Delay(3000); // inspections answered, any record would be written by now
        var after = JournalSequenceNr();
        output.WriteLine($"journal sequence nr: {before} before the restart, {after} after it");
        Assert.True(before == after, $"the restart wrote {after - before} events with nothing changed:\n{fx.Daemon.LogTail(60)}");

        // the reading does move when something changes
        var c = await OnGateway("same-c");
        Assert.True(await E2eProcess.Eventually(() => JournalSequenceNr() > after, TimeSpan.FromSeconds(15)), "a new container was not journalled");
        foreach (var x in new[] { a.C, b.C, plain.C, c.C }) await x.RemoveAsync();
    });

    /// <summary>On the default bridge the container's resolv.conf names its resolvers itself; on a
    /// user-defined network it names the embedded DNS (127.0.0.11), which forwards to them.</summary>
    [Theory]
    [InlineData("bridge")]
    [InlineData(GatewayFixture.GatewayNetwork)]
    public Task A_container_that_rewrites_its_resolv_conf_opens_nothing_new(string network) => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        // a second "resolver" that is not the container's: it answers, so a drop cannot pass vacuously
        using var decoy = UdpEchoServer.Start(H.InternetNsPath, Guard(Server2), 53);
        var outside = await fx.StartedAsync("rc-outside", new ContainerOptions { Network = "bridge" }, waitManaged: false);
        await fx.AssertUdpAllowed(outside.Ns, Server2, 53, what: "(the decoy answers an unfiltered container)");

        // only _dns_ (the label replaces DEFAULT_OUTBOUND, which would allow 198.19.0.11); no --dns
        var c = await fx.StartedAsync("rc", new ContainerOptions { Network = network, OwnDns = false, Labels = { ["dockerwall.outbound"] = "_dns_" } });
        await fx.AssertUdpAllowed(c.Ns, Dns, 53, what: "(its resolver)");
        fx.AssertUdpDropped(c.Ns, Server2, 53, what: "(not its resolver, before the edit)");

        var (code, _, err) = H.DockerCli("exec", c.C.Id, "sh", "-c", $"echo 'nameserver {Guard(Server2)}' > /etc/resolv.conf && cat /etc/resolv.conf");
        Assert.True(code == 0, $"docker exec failed: {err}");

        // re-inspected: a rename is an event that makes WhaleWall look at the container again (and,
        // unlike a restart, keeps the edited file); the new name in the journal shows it did
        var renamed = c.C.Name + "-renamed";
        Assert.Equal(0, H.DockerCli("rename", c.C.Id, renamed).Code);
        Assert.True(await E2eProcess.Eventually(() =>
        {
            var (_, json, _) = fx.Daemon.Cli("status", "--json");
            return JsonNode.Parse(json)!["containers"]!.AsArray().Any(x => x!["id"]!.GetValue<string>() == c.C.Id && x["name"]!.GetValue<string>() == renamed);
        }, TimeSpan.FromSeconds(20)), "the rename was never journalled");
        await Task.Delay(500);
        Assert.DoesNotContain(fx.Table.ElementsMentioning(c.Ip), e => e.Element.Contains(Server2));
        await fx.AssertUdpAllowed(c.Ns, Dns, 53, what: "(its resolver, after the edit)");
        fx.AssertUdpDropped(c.Ns, Server2, 53, what: "(the address it wrote into its resolv.conf)");

        // and again after WhaleWall itself restarts (every container inspected afresh)
        await fx.Daemon.StopAsync();
        await fx.StartDaemonAgainAsync();
        Assert.True(await E2eProcess.Eventually(() => LogSinceLastStart().Contains("reconciling"), TimeSpan.FromSeconds(20)));
        await Task.Delay(1000);
        Assert.DoesNotContain(fx.Table.ElementsMentioning(c.Ip), e => e.Element.Contains(Server2));
        await fx.AssertUdpAllowed(c.Ns, Dns, 53, what: "(its resolver, after a restart of WhaleWall)");
        fx.AssertUdpDropped(c.Ns, Server2, 53, what: "(the address it wrote, after a restart of WhaleWall)");

        await c.C.RemoveAsync();
        await outside.C.RemoveAsync();
    });
}
