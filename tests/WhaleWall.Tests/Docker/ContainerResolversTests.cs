using System.Net;
using WhaleWall.Actors.Docker;
using WhaleWall.Firewall.Policy;
using WhaleWall.Host;
using Xunit;
using static WhaleWall.Actors.Docker.ContainerResolvers;

namespace WhaleWall.Tests.Docker;

/// <summary>What `_dns_` opens: only resolvers the container cannot change, chosen in Docker's
/// own order. Host files are a table here (path -> text).</summary>
public class ContainerResolversTests
{
    private const string DaemonJson = "/etc/docker/daemon.json";
    private static readonly ResolverSettings Defaults = ResolverSettings.Default;

    private static Func<string, string?> Files(params (string Path, string Text)[] files) =>
        path => files.FirstOrDefault(f => f.Path == path).Text;

    private static string[] Servers(Choice c) => [.. c.Servers.Select(s => s.ToString())];

    private static readonly Func<string, string?> HostAndDaemon = Files(
        (DaemonJson, """{"dns": ["198.19.0.54", "2001:db8:19::54"], "log-level": "info"}"""),
        (HostResolvConf, "nameserver 198.19.0.55\n"));

    [Fact]
    public void WhaleWall_configuration_overrides_everything()
    {
        var settings = Defaults with { Configured = [IPAddress.Parse("198.19.0.60")] };
        var c = Choose(settings, ["198.19.0.53"], embeddedDns: true, HostAndDaemon);
        Assert.Equal(Source.WhaleWallConfig, c.From);
        Assert.Equal(["198.19.0.60"], Servers(c));
    }

    [Fact]
    public void The_containers_own_dns_option_comes_next_without_its_loopback_entries()
    {
        var c = Choose(Defaults, ["198.19.0.53", "127.0.0.1", "2001:db8:19::53", "198.19.0.53"], embeddedDns: false, HostAndDaemon);
        Assert.Equal(Source.Container, c.From);
        Assert.Equal(["198.19.0.53", "2001:db8:19::53"], Servers(c));

        // only loopback: queries stay inside the container (or go to the host's loopback through the
        // embedded DNS): nothing to open, and no fallback to anything else
        var loopback = Choose(Defaults, ["127.0.0.1"], embeddedDns: false, HostAndDaemon);
        Assert.Equal(Source.Container, loopback.From);
        Assert.Empty(loopback.Servers);
    }

    [Fact]
    public void Without_dns_option_the_Docker_daemons_configured_dns_applies()
    {
        var c = Choose(Defaults, [], embeddedDns: true, HostAndDaemon);
        Assert.Equal(Source.DockerDaemonConfig, c.From);
        Assert.Equal(["198.19.0.54", "2001:db8:19::54"], Servers(c));

        var elsewhere = Choose(Defaults with { DaemonConfig = "/srv/docker.json" }, null, embeddedDns: true,
            Files(("/srv/docker.json", """{"dns":["198.19.0.56"]}"""), (HostResolvConf, "nameserver 198.19.0.55\n")));
        Assert.Equal(["198.19.0.56"], Servers(elsewhere));
    }

    [Fact]
    public void Without_daemon_dns_the_hosts_resolvers_apply_as_Docker_reads_them()
    {
        var plain = Choose(Defaults, [], embeddedDns: false, Files(
            (DaemonJson, """{"log-level":"debug"}"""),
            (HostResolvConf, "# generated\nsearch example.test\nnameserver 198.19.0.55 ; primary\nnameserver 127.0.0.1\nnameserver fe80::1%eth0\nnameserver 2001:db8:19::55\noptions ndots:1\n")));
        Assert.Equal(Source.Host, plain.From);
        Assert.Equal(["198.19.0.55", "2001:db8:19::55"], Servers(plain));

        // systemd-resolved's stub as the only entry: Docker reads systemd's own list instead
        var resolved = Choose(Defaults, [], embeddedDns: false, Files(
            (HostResolvConf, "nameserver 127.0.0.53\noptions edns0 trust-ad\n"),
            (SystemdResolvConf, "nameserver 198.19.0.57\nnameserver 198.19.0.58\n")));
        Assert.Equal(Source.Host, resolved.From);
        Assert.Equal(["198.19.0.57", "198.19.0.58"], Servers(resolved));

        // 127.0.0.53 next to another resolver is not the systemd case (Docker drops the loopback one)
        var mixed = Choose(Defaults, [], embeddedDns: false, Files(
            (HostResolvConf, "nameserver 127.0.0.53\nnameserver 198.19.0.59\n"),
            (SystemdResolvConf, "nameserver 198.19.0.57\n")));
        Assert.Equal(["198.19.0.59"], Servers(mixed));
    }

    [Fact]
    public void A_host_with_only_loopback_resolvers_opens_nothing_behind_embedded_dns_and_Dockers_defaults_otherwise()
    {
        var files = Files((HostResolvConf, "nameserver 127.0.0.1\n"));
        var embedded = Choose(Defaults, [], embeddedDns: true, files);
        Assert.Equal(Source.HostLoopbackOnly, embedded.From);
        Assert.Empty(embedded.Servers);

        var bridge = Choose(Defaults, [], embeddedDns: false, files);
        Assert.Equal(Source.DockerDefaults, bridge.From);
        Assert.Equal(["8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844"], Servers(bridge));

        Assert.Equal(Source.DockerDefaults, Choose(Defaults, [], embeddedDns: true, Files()).From);
    }

    [Fact]
    public void An_unreadable_daemon_json_is_reported_and_skipped()
    {
        var c = Choose(Defaults, [], embeddedDns: false, Files((DaemonJson, "{ not json"), (HostResolvConf, "nameserver 198.19.0.55\n")));
        Assert.Equal(Source.Host, c.From);
        Assert.Contains(DaemonJson, c.Problem);

        var bad = DaemonDns("""{"dns":["198.19.0.54","dns.example"]}""", DaemonJson);
        Assert.Equal(["198.19.0.54"], bad.Servers.Select(s => s.ToString()));
        Assert.NotNull(bad.Problem);
    }

    [Fact]
    public void The_containers_own_resolv_conf_is_not_among_the_sources()
    {
        // whatever a container writes into its resolv.conf (a bind mount it can edit) is never read:
        // the only files consulted are the daemon's configuration and the host's resolv.conf
        var read = new List<string>();
        Choose(Defaults, [], embeddedDns: true, path => { read.Add(path); return path == HostResolvConf ? "nameserver 127.0.0.53\n" : null; });
        Assert.Equal([DaemonJson, HostResolvConf, SystemdResolvConf], read);
    }

    [Fact]
    public void Embedded_dns_serves_containers_on_user_defined_networks_only()
    {
        NetworkAttachment On(string name) => new(name, name + "-id", IPAddress.Parse("198.18.130.2"), null);
        Assert.False(UsesEmbeddedDns([On("bridge")]));
        Assert.False(UsesEmbeddedDns([]));
        Assert.True(UsesEmbeddedDns([On("bridge"), On("front")]));
    }

    [Fact]
    public void WHALEWALL_CONTAINER_DNS_and_WHALEWALL_DOCKER_CONFIG_are_read_and_checked()
    {
        var o = Options.FromEnvironment(k => k switch
        {
            "WHALEWALL_CONTAINER_DNS" => "198.19.0.53, 2001:db8:19::53",
            "WHALEWALL_DOCKER_CONFIG" => "/srv/daemon.json",
            _ => null,
        });
        Assert.Equal(["198.19.0.53", "2001:db8:19::53"], o.ContainerResolvers!.Configured.Select(a => a.ToString()));
        Assert.Equal("/srv/daemon.json", o.ContainerResolvers.DaemonConfig);
        Assert.Equal(ResolverSettings.DefaultDaemonConfig, Options.FromEnvironment(_ => null).ContainerResolvers!.DaemonConfig);
        Assert.Empty(Options.FromEnvironment(_ => null).ContainerResolvers!.Configured);
        Assert.Throws<ArgumentException>(() => Options.FromEnvironment(k => k == "WHALEWALL_CONTAINER_DNS" ? "resolver.example" : null));
    }
}
