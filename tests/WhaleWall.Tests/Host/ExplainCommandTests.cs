using System.Collections.Immutable;
using System.Net;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Explain;
using WhaleWall.Firewall.Policy;
using WhaleWall.Host;
using WhaleWall.Firewall.Decide;
using Xunit;

namespace WhaleWall.Tests.Host;

/// <summary>`whalewall explain` as the CLI runs it: argument parsing, offline input, and the
/// online path against a daemon report written in a temporary data directory (the kernel
/// lookup is a fake: the real one is covered end to end).</summary>
public sealed class ExplainCommandTests : IDisposable
{
    private readonly string dataDir = Directory.CreateTempSubdirectory("whalewall-explain-").FullName;

    public void Dispose() => Directory.Delete(dataDir, recursive: true);

    private (int Code, string Out, string Err) Run(ExplainCommand.KernelLookup? kernel, params string[] args)
    {
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        var env = new Dictionary<string, string> { ["WHALEWALL_DATA_DIR"] = dataDir };
        var code = ExplainCommand.Create(k => env.GetValueOrDefault(k), stdout, stderr, kernel).Parse(args).Invoke();
        return (code, stdout.ToString(), stderr.ToString());
    }

    private (int Code, string Out, string Err) Run(params string[] args) => Run(null, args);

    private const string Https = "whalewall.rules=output:\n  - ips: [198.19.0.10]\n    proto: tcp\n    dst_ports: [443]";

    [Theory]
    [InlineData("web", "sctp", "198.19.0.10", "443")]
    [InlineData("web", "tcp", "198.19.0.10", "http")]
    [InlineData("web", "tcp", "198.19.0.10", "70000")]
    [InlineData("web", "icmp", "198.19.0.10", "no-such-type")]
    [InlineData("web", "tcp", "443")]
    public void Bad_arguments_are_usage_errors(params string[] args)
    {
        var (code, _, err) = Run([.. args, "--label", "whalewall.enabled=true"]);
        Assert.Equal(2, code);
        Assert.StartsWith("whalewall explain:", err);
    }

    [Fact]
    public void From_makes_an_ingress_query_with_or_without_the_container_repeated()
    {
        var (name, query, error) = ExplainCommand.Parse(["web", "tcp", "80"], "198.19.0.9", null);
        Assert.Null(error);
        Assert.Equal(("web", new ExplainQuery(Direction.Ingress, L4Proto.Tcp, "198.19.0.9", 80)), (name, query));
        Assert.Equal(query, ExplainCommand.Parse(["web", "tcp", "web", "80"], "198.19.0.9", null).Query);
        Assert.NotNull(ExplainCommand.Parse(["web", "tcp", "db", "80"], "198.19.0.9", null).Error);
        Assert.Equal((ushort)8, ExplainCommand.Parse(["web", "icmp", "198.19.0.1", "echo-request"], null, null).Query!.Port);
    }

    [Fact]
    public void Offline_labels_accept_with_exit_0_and_name_the_rule()
    {
        var (code, output, _) = Run("web", "tcp", "198.19.0.10", "443", "--label", "whalewall.enabled=true", "--label", Https);
        Assert.Equal(0, code);
        Assert.Contains("web -> 198.19.0.10 tcp/443: ACCEPT", output);
        Assert.Contains("why: allowed by web's whalewall.rules output[0] (line 2)", output);
        Assert.Contains("offline: kernel not consulted", output);
    }

    [Fact]
    public void Offline_drop_exits_1_even_in_audit_mode()
    {
        var (code, output, _) = Run("web", "tcp", "198.19.0.10", "80", "--label", "whalewall.enabled=true", "--label", Https,
            "--label", "whalewall.mode=audit", "--json");
        Assert.Equal(1, code);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(("drop", "audit", true, true), (json["verdict"]!.GetValue<string>(), json["mode"]!.GetValue<string>(),
            json["passes"]!.GetValue<bool>(), json["offline"]!.GetValue<bool>()));
    }

    [Fact]
    public void Offline_compose_services_are_each_others_peers()
    {
        var file = Path.Combine(dataDir, "compose.yml");
        File.WriteAllText(file, """
            services:
              web:
                image: x
                labels:
                  whalewall.enabled: "true"
                  whalewall.rules: |
                    output:
                      - container: db
                        proto: tcp
                        dst_ports: [5432]
              db:
                image: x
                ports: ["5432:5432"]
                labels:
                  whalewall.enabled: "true"
            """);
        Assert.Equal(0, Run("web", "tcp", "db", "5432", "--compose", file).Code);
        Assert.Equal(1, Run("web", "tcp", "db", "5433", "--compose", file).Code);
        var (code, output, _) = Run("db", "tcp", "5432", "--from", "web", "--compose", file);
        Assert.Equal(0, code);
        Assert.Contains("rule: whalewall.rules output[0] (line 2) of web", output);
        // published, but mapped_ports is closed
        Assert.Equal(1, Run("db", "tcp", "5432", "--from", "198.19.0.99", "--compose", file).Code);
    }

    [Fact]
    public void Online_without_a_report_says_so()
    {
        var (code, _, err) = Run("web", "tcp", "198.19.0.10", "443");
        Assert.Equal(2, code);
        Assert.Contains("no report of a running daemon", err);
    }

    private static ContainerFacts Container(string name, string ip, Dictionary<string, string> labels) =>
        new(new string(name[0], 64), name, true, labels.ToImmutableDictionary(),
            [new NetworkAttachment("net", "net-id", IPAddress.Parse(ip), null, 24)], []);

    private void Report(params (ContainerFacts Facts, JsonArray? Learned)[] containers) =>
        File.WriteAllText(Path.Combine(dataDir, "daemon.json"), new JsonObject
        {
            ["pid"] = 1,
            ["containers"] = new JsonArray([.. containers.Select(c => (JsonNode)new JsonObject
            {
                ["id"] = c.Facts.Id,
                ["name"] = c.Facts.Name,
                ["facts"] = FactsJson.ToJson(c.Facts),
                ["dns_learned"] = c.Learned,
            })]),
        }.ToJsonString());

    [Fact]
    public void Online_the_daemons_own_settings_decide_not_this_shells()
    {
        var web = Container("web", "198.18.0.2", new() { ["whalewall.enabled"] = "true" });
        Report((web, null));
        // no settings in the report: this shell's environment, and a note
        var (_, plain, _) = Run((_, _) => true, "web", "tcp", "198.19.0.10", "443");
        Assert.Contains("does not say its settings", plain);
        Assert.DoesNotContain("audit: passes", plain);

        // the daemon runs with WHALEWALL_MODE=audit; this shell does not say so
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(dataDir, "daemon.json")))!.AsObject();
        report["decision"] = new DecisionSettings(null, null, true, PolicyMode.Audit).ToJson();
        File.WriteAllText(Path.Combine(dataDir, "daemon.json"), report.ToJsonString());
        var (code, audited, _) = Run((_, _) => true, "web", "tcp", "198.19.0.10", "443");
        Assert.Equal(1, code);
        Assert.Contains("audit: passes", audited);
        Assert.Contains("decided with the daemon's settings", audited);
        Assert.Equal(PolicyMode.Audit, DecisionSettings.ContextOf(report["decision"])!.Mode);
        Assert.Null(DecisionSettings.ContextOf(new JsonObject { ["mode"] = "sometimes" }));
    }

    [Fact]
    public void Online_reads_the_daemons_containers_and_checks_each_element_in_the_kernel()
    {
        var web = Container("web", "198.18.0.2", new() { ["whalewall.enabled"] = "true", ["whalewall.rules"] = "output:\n  - container: db" });
        var db = Container("db", "198.18.0.3", new() { ["whalewall.enabled"] = "true" });
        Report((web, null), (db, null));
        var asked = new List<string>();
        var (code, output, _) = Run((table, e) =>
        {
            asked.Add($"{table} {e}");
            return !e.Set.StartsWith("peer", StringComparison.Ordinal);
        }, "web", "tcp", "db", "5432");
        Assert.Equal(0, code);
        Assert.Contains("kernel: out4 198.18.0.2 . 198.18.0.3 . 0-255 . 0-65535 . 0-65535 (present)", output);
        Assert.Contains("kernel: peer4 198.18.0.2 . 198.18.0.3 . 0-255 . 0-65535 . 0-65535 (MISSING from the table)", output);
        Assert.All(asked, a => Assert.StartsWith("whalewall ", a));
        Assert.Equal(2, Run("nobody", "tcp", "db", "5432").Code);
    }

    [Fact]
    public void Online_hostnames_use_the_containers_learned_answers()
    {
        var web = Container("web", "198.18.0.2", new() { ["whalewall.enabled"] = "true", ["whalewall.rules"] = "output:\n  - hosts: [api.test.example]\n    proto: tcp" });
        var expires = DateTimeOffset.UtcNow.AddMinutes(5);
        Report((web, new JsonArray(new JsonObject { ["name"] = "api.test.example", ["address"] = "198.19.0.20", ["expires"] = expires.ToString("O") })));
        var (code, output, _) = Run((_, _) => true, "web", "tcp", "api.test.example", "443");
        Assert.Equal(0, code);
        Assert.Contains("dns: api.test.example -> 198.19.0.20, learned from the container's lookup", output);
        Assert.Contains("kernel: outh4 198.18.0.2 . 198.19.0.20 . 6 . 0-65535 . 0-65535 (present)", output);
    }

    [Fact]
    public void The_kernel_is_asked_with_a_text_get_element_of_the_key_without_its_verdict()
    {
        var element = new WhaleWall.Firewall.Nft.Element("outv4", [
            WhaleWall.Firewall.Nft.Field.Address(AddressRange.Single(IPAddress.Parse("198.18.0.2"))),
            WhaleWall.Firewall.Nft.Field.Address(new AddressRange(IpFamily.V4, 0, uint.MaxValue)),
            new(WhaleWall.Firewall.Nft.FieldKind.Proto, 6, 6), new(WhaleWall.Firewall.Nft.FieldKind.Port, 0, 65535),
            new(WhaleWall.Firewall.Nft.FieldKind.Port, 443, 443)], "r_0123");
        Assert.Equal("get element inet whalewall outv4 { 198.18.0.2 . 0.0.0.0-255.255.255.255 . 6 . 0-65535 . 443 }",
            ExplainCommand.GetElementCommand("whalewall", element));
    }

    [Fact]
    public void An_exact_element_is_asked_of_the_hash_twin_that_holds_it_without_its_source_port()
    {
        var element = new WhaleWall.Firewall.Nft.Element("out4", [
            WhaleWall.Firewall.Nft.Field.Address(AddressRange.Single(IPAddress.Parse("198.18.0.2"))),
            WhaleWall.Firewall.Nft.Field.Address(AddressRange.Single(IPAddress.Parse("198.18.0.3"))),
            new(WhaleWall.Firewall.Nft.FieldKind.Proto, 6, 6), new(WhaleWall.Firewall.Nft.FieldKind.Port, 0, 65535),
            new(WhaleWall.Firewall.Nft.FieldKind.Port, 756, 756)]);
        Assert.Equal("get element inet whalewall outx4 { 198.18.0.2 . 198.18.0.3 . 6 . 756 }",
            ExplainCommand.GetElementCommand("whalewall", element));
    }

    [Fact]
    public void Facts_survive_the_report_and_a_hostile_report_is_skipped_not_thrown()
    {
        var facts = Container("web", "198.18.0.2", new() { ["whalewall.enabled"] = "true", ["unrelated"] = "x" })
            with { Ports = [new PublishedPort(80, L4Proto.Tcp, "0.0.0.0", 8080)], DnsServers = [IPAddress.Parse("198.18.0.1")] };
        var back = FactsJson.Read(facts.Id, facts.Name, JsonNode.Parse(FactsJson.ToJson(facts).ToJsonString()))!;
        Assert.Equal(["whalewall.enabled"], back.Labels.Keys);
        Assert.Equal(facts.Networks.ToArray(), back.Networks.ToArray());
        Assert.Equal(facts.Ports.ToArray(), back.Ports.ToArray());
        Assert.Equal(facts.DnsServers.ToArray(), back.DnsServers.ToArray());

        foreach (var hostile in new[] { "[]", "{\"labels\": 5, \"networks\": [1, {\"name\": 3}, {\"name\": \"n\", \"ipv4\": \"999.1.1.1\", \"ipv4_prefix\": 99}]}", "{\"ports\": [{\"container_port\": -1}]}" })
            FactsJson.Read("id", "n", JsonNode.Parse(hostile));
        File.WriteAllText(Path.Combine(dataDir, "daemon.json"), "{\"containers\": [1, {\"id\": 2}, {\"id\": \"x\", \"name\": \"web\", \"facts\": {\"networks\": \"no\"}}]}");
        Assert.Equal(1, Run((_, _) => true, "web", "tcp", "198.19.0.10", "443").Code);
    }
}
