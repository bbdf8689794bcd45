namespace WhaleWall.Firewall.Flows;

/// <summary>A flow the kernel just confirmed (its first packet passed every hook), with its ct
/// mark as the rules left it (<see cref="Nft.NftSets.AuditMark"/>: an audited would-be drop).</summary>
public sealed record NewFlow(ConntrackFlow Flow, uint Mark)
{
    public bool AuditDrop => (Mark & Nft.NftSets.AuditMark) != 0 && (Mark & 0x80000000) == 0;
}

/// <summary>The kernel's new-flow notifications (conntrack events). Only confirmed flows are
/// reported: a packet the rules dropped never creates one.</summary>
public interface INewFlows : IDisposable
{
    /// <summary>Waits up to <paramref name="timeout"/> and adds what arrived. Returns false when
    /// notifications were lost (the kernel overran the buffer).</summary>
    bool Read(TimeSpan timeout, List<NewFlow> into);
}
