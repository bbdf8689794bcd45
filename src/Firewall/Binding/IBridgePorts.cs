namespace WhaleWall.Firewall.Binding;

/// <summary>A container's port on a bridge: the host-side end of its veth pair.
/// <see cref="Index"/> is what the bridge table keys on (<c>meta iif</c>): it stays the same
/// for the link's whole life and is not handed out again while the host runs (a new link gets
/// a new index), so a binding keyed by it can never match a later container.</summary>
/// <param name="Index">ifindex of the host-side veth (in the host namespace).</param>
/// <param name="Name">its name, e.g. <c>veth1a2b3c4</c> (for logs; names are reused, indexes not).</param>
/// <param name="PeerIndex">ifindex of the container-side end, inside the container's namespace.</param>
/// <param name="PeerMac">the MAC address of the container-side end, as the kernel has it
/// (lower-case <c>aa:bb:..</c>), or null when it could not be read.</param>
public sealed record BridgePort(int Index, string Name, int PeerIndex, string? PeerMac);

/// <summary>Finds a container's port on a bridge from what WhaleWall sees in the host network
/// namespace: the container's network namespace (Docker's <c>NetworkSettings.SandboxKey</c>, or
/// its init pid) and the bridge's name. Never enters the container's namespace.</summary>
public interface IBridgePorts
{
    /// <summary>The port of <paramref name="bridge"/> whose veth peer lives in the network
    /// namespace bound at <paramref name="sandboxKey"/> (e.g. <c>/var/run/docker/netns/1a2b…</c>);
    /// null when there is none (not attached yet, or already gone).</summary>
    BridgePort? Find(string sandboxKey, string bridge);

    /// <summary>The same, naming the namespace by a pid living in it (the container's
    /// <c>State.Pid</c>; the pid is read in WhaleWall's own pid namespace).</summary>
    BridgePort? FindByPid(int pid, string bridge);

    /// <summary>The ports of <paramref name="bridge"/> whose veth peer has MAC address
    /// <paramref name="mac"/> (read in each peer's namespace from outside; needs CAP_NET_ADMIN),
    /// skipping ports in <paramref name="skip"/> (those already bound or classified). Needs
    /// neither the sandbox key nor the container's pid: what Docker's <c>network connect</c>
    /// event and a network inspect give. Exactly one result binds; none or several means "not
    /// (yet) known" and fails closed.</summary>
    IReadOnlyList<BridgePort> FindByMac(string bridge, string mac, IReadOnlySet<int>? skip = null);

    /// <summary><see cref="FindByMac"/>, waiting (woken by the kernel's link notifications, not
    /// polling) until exactly one port matches or <paramref name="timeout"/> passes (null).</summary>
    BridgePort? WaitForMac(string bridge, string mac, TimeSpan timeout, IReadOnlySet<int>? skip = null);

    /// <summary>Whether a link with this index and name still exists (start-up: a binding
    /// restored from the journal whose port is gone is dropped, never re-bound to a new link).</summary>
    bool Exists(int index, string name);
}
