using System.Collections.Immutable;
using System.Net;
using System.Text.Json;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Golden;

/// <summary>One folder per case under golden/: <c>case.json</c> (a container, its labels and
/// its peers) in, <c>expected.nft.json</c> (the transaction that adds its elements) out, diffed
/// line by line; <c>golden/layout.nft.json</c> is the start-up transaction of an empty table
/// (sets, chains, rules), once. <c>WHALEWALL_UPDATE_GOLDEN=1</c> rewrites the expected files.
/// regressions/ holds a case for each defect of the old tools.</summary>
public class GoldenTests
{
    private static readonly string Root = Path.Combine(AppContext.BaseDirectory, "golden");

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(Root, "case.json", SearchOption.AllDirectories).Order())
            data.Add(Path.GetRelativePath(Root, Path.GetDirectoryName(file)!));
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Compiles_to_the_expected_nftables_json(string name)
    {
        var dir = Path.Combine(Root, name);
        var input = JsonSerializer.Deserialize<GoldenCase>(File.ReadAllText(Path.Combine(dir, "case.json")), Json)!;
        var self = input.Container.ToFacts();
        var result = Compiler.Compile(self, LabelParser.Decide(self.Labels), input.Peers.Select(p => p.ToFacts()).ToList());
        Compare(Path.Combine(name, "expected.nft.json"), NftJson.Changes("whalewall", [], result.Fragment.Elements, indented: true) + "\n");
    }

    [Fact]
    public void The_layout_is_the_expected_nftables_json() =>
        Compare("layout.nft.json", NftJson.FullTable("whalewall", [], indented: true) + "\n");

    private static void Compare(string file, string actual)
    {
        var name = file;
        if (Environment.GetEnvironmentVariable("WHALEWALL_UPDATE_GOLDEN") == "1")
        {
            File.WriteAllText(Path.Combine(SourceDir(), "golden", file), actual);
            return;
        }
        var expected = File.ReadAllText(Path.Combine(Root, file)).Split('\n');
        var lines = actual.Split('\n');
        for (var i = 0; i < Math.Max(expected.Length, lines.Length); i++)
            Assert.True(i < expected.Length && i < lines.Length && expected[i] == lines[i],
                $"{name}: line {i + 1} differs\n expected: {(i < expected.Length ? expected[i] : "<end>")}\n actual:   {(i < lines.Length ? lines[i] : "<end>")}");
    }

    private static string SourceDir([System.Runtime.CompilerServices.CallerFilePath] string path = "") =>
        Path.GetDirectoryName(Path.GetDirectoryName(path))!;

    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = true };

    private sealed record GoldenCase(GoldenContainer Container, List<GoldenContainer> Peers);

    private sealed record GoldenNetwork(string Name, string? Ipv4, string? Ipv6);

    private sealed record GoldenPort(ushort ContainerPort, string Proto, ushort HostPort);

    private sealed record GoldenContainer(string Name, Dictionary<string, string> Labels, List<GoldenNetwork> Networks, List<GoldenPort>? Ports)
    {
        public ContainerFacts ToFacts() => new(
            Name + "-id", Name, true, Labels.ToImmutableDictionary(),
            [.. Networks.Select(n => new NetworkAttachment(n.Name, n.Name + "-id",
                n.Ipv4 is null ? null : IPAddress.Parse(n.Ipv4), n.Ipv6 is null ? null : IPAddress.Parse(n.Ipv6)))],
            [.. (Ports ?? []).Select(p => new PublishedPort(p.ContainerPort, p.Proto == "udp" ? L4Proto.Udp : L4Proto.Tcp, "0.0.0.0", p.HostPort))]);
    }
}
