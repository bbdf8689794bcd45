using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Nft;

/// <summary>The sets of WhaleWall's table (docs/nftables.md) and the shape of their keys.</summary>
public static class NftSets
{
    public sealed record SetShape(string Name, ImmutableArray<FieldKind> Key, bool Interval);

    public static string Managed(IpFamily f) => f == IpFamily.V4 ? "managed4" : "managed6";
    public static string Out(IpFamily f) => f == IpFamily.V4 ? "out4" : "out6";
    public static string Peer(IpFamily f) => f == IpFamily.V4 ? "peer4" : "peer6";
    public static string Pub(IpFamily f) => f == IpFamily.V4 ? "pub4" : "pub6";
    public static string Local(IpFamily f) => f == IpFamily.V4 ? "local4" : "local6";

    public static readonly ImmutableArray<SetShape> All = Build();

    private static ImmutableArray<SetShape> Build()
    {
        var sets = ImmutableArray.CreateBuilder<SetShape>();
        foreach (var f in new[] { IpFamily.V4, IpFamily.V6 })
        {
            var a = f == IpFamily.V4 ? FieldKind.Ipv4 : FieldKind.Ipv6;
            sets.Add(new(Managed(f), [a], false));
            foreach (var name in new[] { Out(f), Peer(f), Pub(f) })
                sets.Add(new(name, [a, a, FieldKind.Proto, FieldKind.Port], true));
            sets.Add(new(Local(f), [a, FieldKind.Proto, FieldKind.Port], true));
        }
        return sets.ToImmutable();
    }
}
