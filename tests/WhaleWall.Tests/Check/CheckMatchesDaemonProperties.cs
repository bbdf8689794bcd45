using System.Collections.Immutable;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Policy;
using WhaleWall.Host;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.Tests.Check;

/// <summary>`whalewall check` must say what the daemon will do. A generated deployment (services
/// with label sets, networks with drivers, network modes; GATEWAY_NETWORKS and DEFAULT_OUTBOUND)
/// goes two ways: (1) as a compose file (or --label/--network flags) and an environment (or
/// flags) through the `check` command exactly as the CLI runs it; (2) as the facts Docker reports
/// for the deployed containers (Docker's names and drivers, other addresses) and the daemon's
/// Options read from the same environment, through what the daemon runs (the decision entry
/// point, then the compiler). Every service's verdict must be the same, and so must the exit
/// code (2 when the daemon would refuse to start).
/// Not modelled: the container's resolvers (`_dns_`): check cannot know them, so the daemon side
/// has none either (they only add elements).</summary>
public class CheckMatchesDaemonProperties(ITestOutputHelper output)
{
    private static int Count => int.TryParse(Environment.GetEnvironmentVariable("WHALEWALL_CHECK_PROPERTY_COUNT"), out var n) ? n : 400;

    private const string Project = "proj";

    private sealed record Net(string Key, string Driver, bool External)
    {
        public string DockerName => External ? Key : $"{Project}_{Key}";
    }

    private static readonly Net[] Nets =
    [
        new("front", "bridge", false), new("back", "bridge", false), new("lan", "macvlan", false),
        new("ov", "overlay", false), new("plug", "weave", false), new("ext", "bridge", true),
    ];

    private static readonly Net DefaultNet = new("default", "bridge", false);

    private sealed record Svc(string Name, IReadOnlyDictionary<string, string> Labels, string? Mode, string[] NetKeys, bool MapForm);

    private sealed record Deployment(Svc[] Services, string? Gateway, string? DefaultOutbound, bool EnvAsFlags, bool ViaLabelFlags)
    {
        public override string ToString() =>
            $"GATEWAY_NETWORKS={Gateway ?? "(unset)"} DEFAULT_OUTBOUND={DefaultOutbound ?? "(unset)"} flags={EnvAsFlags} labelFlags={ViaLabelFlags}\n" +
            string.Join("\n", Services.Select(s => $"  {s.Name} mode={s.Mode} nets=[{string.Join(",", s.NetKeys)}] labels={JsonSerializer.Serialize(s.Labels)}"));
    }

    private static Gen<Svc> Service(string name) =>
        from labels in LabelGen.LabelSet
        from mode in Gen.Frequency((40, Gen.Constant<string?>(null)), (1, Gen.Constant<string?>("host")), (1, Gen.Constant<string?>("none")),
            (1, Gen.Constant<string?>("service:db")), (1, Gen.Constant<string?>("container:db")), (1, Gen.Constant<string?>("bridge")))
        from bridges in Gen.SubListOf(new[] { "front", "back", "ext" })
        from invisible in Gen.Frequency((4, Gen.Constant<string?>(null)), (1, Gen.Elements<string?>("lan", "ov", "plug")))
        let keys = invisible is null ? bridges : [.. bridges, invisible]
        from mapForm in Gen.Elements(true, false)
        select new Svc(name, labels, mode, [.. keys], mapForm);

    private static readonly Gen<string?> GatewayGen = Gen.Elements<string?>(null, null, "", $"{Project}_front", $"{Project}_front,{Project}_back",
        $"!{Project}_back", $"ext,{Project}_lan", $"{Project}_default", "bridge", $"{Project}_ov, !{Project}_front", $"{Project}_plug");

    private static readonly Gen<string?> OutboundGen = Gen.Frequency((4, Gen.Constant<string?>(null)), (1, Gen.Constant<string?>("")),
        (2, Gen.Constant<string?>("_dns_")), (2, LabelGen.Outbound.Select(o => (string?)o)));

    private static Gen<Deployment> Deployments =>
        from viaFlags in Gen.Frequency((3, Gen.Constant(false)), (1, Gen.Constant(true)))
        from n in viaFlags ? Gen.Constant(1) : Gen.Choose(1, 3)
        from web in Service("web")
        from db in Service("db")
        from cache in Service("cache")
        // --label needs at least one label
        let services = viaFlags && web.Labels.Count == 0 ? [web with { Labels = new Dictionary<string, string> { ["other.label"] = "x" } }]
            : new[] { web, db, cache }.Take(n).ToArray()
        from gateway in GatewayGen
        from outbound in OutboundGen
        from envAsFlags in Gen.Elements(true, false)
        select new Deployment([.. services], gateway, outbound, envAsFlags, viaFlags);

    [Fact]
    public void Check_verdicts_equal_the_daemons_decisions()
    {
        var seen = new Dictionary<string, int>();
        var dir = Directory.CreateTempSubdirectory("ww-check-");
        try
        {
            Prop.ForAll(Deployments.ToArbitrary(), deployment =>
            {
                var expected = Daemon(deployment);
                var (code, verdicts, text) = Check(deployment, dir.FullName);
                foreach (var v in expected?.Values.ToArray() ?? ["(daemon refuses to start)"]) seen[v] = seen.GetValueOrDefault(v) + 1;
                if (expected is null)
                    return code == 2 ? true : throw new Xunit.Sdk.XunitException($"daemon refuses the environment but check exited {code}:\n{deployment}\n{text}");
                var expectedCode = expected.Values.All(v => v is "enforced" or "unmanaged") ? 0 : 1;
                if (code != expectedCode || !expected.OrderBy(kv => kv.Key).SequenceEqual(verdicts.OrderBy(kv => kv.Key)))
                    throw new Xunit.Sdk.XunitException(
                        $"check (exit {code}) and the daemon (exit {expectedCode}) disagree:\n{deployment}\n" +
                        $"daemon: {string.Join(", ", expected.Select(kv => $"{kv.Key}={kv.Value}"))}\n" +
                        $"check:  {string.Join(", ", verdicts.Select(kv => $"{kv.Key}={kv.Value}"))}\n{text}");
                return true;
            }).Check(Config.QuickThrowOnFailure.WithMaxTest(Count).WithQuietOnSuccess(true));
        }
        finally { dir.Delete(true); }
        output.WriteLine(string.Join(", ", seen.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")));
        foreach (var verdict in new[] { "enforced", "unmanaged", "fail_closed", "unfilterable", "(daemon refuses to start)" })
            Assert.True(seen.GetValueOrDefault(verdict) > 0, $"the generator never produced a {verdict} case");
    }

    // ---- the daemon's side: Docker's facts, the daemon's options

    private static Dictionary<string, string>? Daemon(Deployment d)
    {
        Options options;
        try { options = Options.FromEnvironment(Env(d)); }
        catch (ArgumentException) { return null; }

        var facts = d.Services.Select((s, i) => DockerFacts(s, i, compose: !d.ViaLabelFlags)).ToList();
        var result = new Dictionary<string, string>();
        foreach (var (s, f) in d.Services.Zip(facts))
        {
            var decision = ContainerDecider.Decide(options.Decision, f);
            var compiled = decision.Policy.IsManaged ? Compiler.Compile(f, decision.Policy, facts) : null;
            result[d.ViaLabelFlags ? "labels" : s.Name] = decision.After(compiled).Label();
        }
        return result;
    }

    private static Func<string, string?> Env(Deployment d) => key => key switch
    {
        "GATEWAY_NETWORKS" => d.Gateway,
        "DEFAULT_OUTBOUND" => d.DefaultOutbound,
        _ => null,
    };

    /// <summary>What container inspect gives for the deployed service: Docker's container name,
    /// compose labels, full network names with their drivers and addresses, the network mode.</summary>
    private static ContainerFacts DockerFacts(Svc s, int i, bool compose)
    {
        var labels = s.Labels.ToImmutableDictionary();
        if (compose)
            labels = labels.SetItem(ContainerFacts.ComposeProjectLabel, Project).SetItem(ContainerFacts.ComposeServiceLabel, s.Name);
        ImmutableArray<NetworkAttachment> networks;
        string mode;
        switch (s.Mode)
        {
            case "host":
                networks = [new NetworkAttachment("host", "host-nid", null, null, Driver: "host")];
                mode = "host";
                break;
            case "none":
                networks = [new NetworkAttachment("none", "none-nid", null, null, Driver: "null")];
                mode = "none";
                break;
            case "service:db" or "container:db":
                networks = [];
                mode = "container:db-cid";
                break;
            default:
                var nets = s.Mode == "bridge" ? [new Net("bridge", "bridge", true)]
                    : s.NetKeys.Length == 0 ? [compose ? DefaultNet : new Net("bridge", "bridge", true)]
                    : s.NetKeys.Select(k => Nets.Single(n => n.Key == k)).ToArray();
                networks = [.. nets.Select(n =>
                {
                    var k = Array.IndexOf(Nets, n) + 1;
                    return new NetworkAttachment(n.DockerName, n.DockerName + "-nid",
                        IPAddress.Parse($"198.19.{k}.{i + 10}"), IPAddress.Parse($"2001:db8:19:{k:x}::{i + 10:x}"), 24, 64, n.Driver);
                })];
                mode = networks[0].Name;
                break;
        }
        return new ContainerFacts($"{s.Name}-cid", compose ? $"{Project}-{s.Name}-1" : s.Name, true, labels, networks, [],
            NetworkMode: mode);
    }

    // ---- the CLI's side

    private static (int Code, Dictionary<string, string> Verdicts, string Text) Check(Deployment d, string dir)
    {
        var args = new List<string> { "--json" };
        if (d.ViaLabelFlags)
        {
            var s = d.Services[0];
            foreach (var (k, v) in s.Labels) args.AddRange(["--label", $"{k}={v}"]);
            if (s.Mode is "host" or "none") args.AddRange(["--network", s.Mode]);
            else if (s.Mode is "service:db" or "container:db") args.AddRange(["--network", "container:db"]);
            else if (s.Mode is "bridge") args.AddRange(["--network", "bridge"]);
            else foreach (var key in s.NetKeys) { var n = Nets.Single(x => x.Key == key); args.AddRange(["--network", $"{n.DockerName}:{n.Driver}"]); }
        }
        else
        {
            var file = Path.Combine(dir, "compose.yml");
            File.WriteAllText(file, ComposeYaml(d));
            args.AddRange(["--compose", file]);
        }
        Func<string, string?> env = Env(d);
        if (d.EnvAsFlags)
        {
            if (d.Gateway is not null) args.AddRange(["--gateway-networks", d.Gateway]);
            if (d.DefaultOutbound is not null) args.AddRange(["--default-outbound", d.DefaultOutbound]);
            env = _ => null;
        }
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CheckCommand.Create(env, stdout, stderr).Parse(args.ToArray()).Invoke();
        var text = stdout + stderr.ToString();
        var verdicts = new Dictionary<string, string>();
        if (code is 0 or 1 && JsonNode.Parse(stdout.ToString()) is JsonObject json)
            foreach (var s in json["services"]!.AsArray())
                verdicts[s!["name"]!.GetValue<string>()] = s["verdict"]!.GetValue<string>();
        return (code, verdicts, text);
    }

    private static string Quote(string s) => JsonSerializer.Serialize(s); // a JSON string is a YAML double-quoted scalar

    private static string ComposeYaml(Deployment d)
    {
        var y = new StringBuilder($"name: {Project}\nservices:\n");
        foreach (var s in d.Services)
        {
            y.Append($"  {s.Name}:\n    image: busybox\n");
            if (s.Labels.Count > 0)
            {
                y.Append("    labels:\n");
                foreach (var (k, v) in s.Labels)
                    y.Append(s.MapForm ? $"      {Quote(k)}: {Quote(v)}\n" : $"      - {Quote(k + "=" + v)}\n");
            }
            if (s.Mode is not null) y.Append($"    network_mode: {Quote(s.Mode)}\n");
            else if (s.NetKeys.Length > 0)
                y.Append(s.MapForm
                    ? "    networks:\n" + string.Concat(s.NetKeys.Select(k => $"      {k}: {{}}\n"))
                    : $"    networks: [{string.Join(", ", s.NetKeys)}]\n");
        }
        y.Append("networks:\n");
        foreach (var n in Nets)
            y.Append(n.External ? $"  {n.Key}: {{ external: true }}\n" : n.Driver == "bridge" && n.Key == "front" ? $"  {n.Key}: {{}}\n" : $"  {n.Key}: {{ driver: {n.Driver} }}\n");
        return y.ToString();
    }
}
