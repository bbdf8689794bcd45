using System.Text.Json.Nodes;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;
using static WhaleWall.TestSupport.TestNet;

namespace WhaleWall.EndToEnd;

/// <summary>Issue 12 (10): an opted-in container whose traffic WhaleWall cannot see is reported
/// `unfilterable` (status, metrics, one warning), never enforced, and nothing of the host it
/// shares is put under policy. Needs root and Docker (the e2e harness).</summary>
[Collection(E2eCollection.Name)]
public sealed class UnfilterableTests(E2eFixture fx, ITestOutputHelper output)
{
    private DockerHarness H => fx.Harness;

    private static JsonNode? Container(WhaleWallDaemon d, string id)
    {
        var (code, json, _) = d.Cli("status", "--json");
        return code != 0 ? null : JsonNode.Parse(json)?["containers"]?.AsArray().FirstOrDefault(c => c?["id"]?.GetValue<string>() == id);
    }

    [Fact]
    public Task Host_network_and_shared_namespace_containers_are_reported_unfilterable_and_the_host_keeps_working() => fx.Run(output, async () =>
    {
        await fx.EnsureDaemonAsync();
        var rules = $"output: [{{ips: [{Server1}], proto: tcp, dst_ports: [80]}}]";
        var hostNet = await H.RunContainerAsync(fx.Name("hostnet"), new ContainerOptions { Network = "host", Labels = E2eLabels.OptIn(rules) });
        var owner = await fx.StartedAsync("ns-owner", new ContainerOptions { Labels = E2eLabels.OptIn(rules) });
        var sharer = await H.RunContainerAsync(fx.Name("sharer"), new ContainerOptions { Network = "container:" + owner.C.Id, Labels = E2eLabels.OptIn(), OwnDns = false });

        JsonNode? a = null, b = null;
        var reported = await E2eProcess.Eventually(() =>
        {
            a = Container(fx.Daemon, hostNet.Id);
            b = Container(fx.Daemon, sharer.Id);
            return a?["state"]?.GetValue<string>() == "unfilterable" && b?["state"]?.GetValue<string>() == "unfilterable";
        }, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(500));
        Assert.True(reported, $"status: host network {a}, container: mode {b}");
        Assert.Contains(a!["reasons"]!.AsArray(), r => r!.GetValue<string>().Contains("host"));

        var samples = await fx.ScrapeAsync();
        Assert.True(samples.Value("whalewall_containers", ("state", "unfilterable")) >= 2, "whalewall_containers{state=\"unfilterable\"}");

        // events that re-inspect the container do not repeat the warning
        await H.Docker.Containers.RenameContainerAsync(hostNet.Id, new Docker.DotNet.Models.ContainerRenameParameters { NewName = fx.Name("hostnet-renamed") }, default);
        await Task.Delay(1500);
        var warnings = fx.Daemon.LogTail(3000).Split('\n').Count(l => l.Contains("UNFILTERABLE") && l.Contains(hostNet.Id[..12]));
        Assert.Equal(1, warnings);

        // nothing of the host went under policy: the host namespace still reaches the internet
        Assert.DoesNotContain(fx.Table.Elements("managed4"), e => e.ToJsonString().Contains(HostLink4));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(H.HostNsPath, Guard(Server1), TcpPortOther, TimeSpan.FromSeconds(2)));
        // the namespace owner's own policy still holds for both (they share its address)
        await fx.AssertTcpAllowed(owner.Ns, Server1, TcpPort);
        fx.AssertTcpDropped(owner.Ns, Server1, TcpPortOther, what: "(owner's policy, shared by the container: mode container)");

        foreach (var c in new[] { sharer, hostNet, owner.C }) await c.RemoveAsync();
    });
}
