using System.Collections.Immutable;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Actors.Nft;

public static class NftWriterCommands
{
    /// <summary>Make the kernel hold exactly <paramref name="Fragment"/> for its owner (an
    /// empty fragment removes the owner). Answered with Applied or Rejected.</summary>
    public sealed record Program(Fragment Fragment, long Version);

    /// <summary>Start-up: build the whole table in one transaction once each of these
    /// owners has sent its first Program.</summary>
    public sealed record ExpectOwners(ImmutableHashSet<string> Owners);
}

public static class NftWriterEvents
{
    public sealed record Applied(string Owner, long Version);
    public sealed record Rejected(string Owner, long Version, string Error);

    /// <summary>Published on the event stream once the start-up table is in the kernel.</summary>
    public sealed record TableReady(string Table, int Containers, int Elements);
}
