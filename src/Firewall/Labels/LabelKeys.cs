namespace WhaleWall.Firewall.Labels;

public static class LabelKeys
{
    public const string Enabled = "whalewall.enabled";
    public const string Rules = "whalewall.rules";

    /// <summary><c>enforce</c> (the default) or <c>audit</c>: would-be drops are counted,
    /// logged, recorded, and pass. Overrides <c>WHALEWALL_MODE</c> for this container.</summary>
    public const string Mode = "whalewall.mode";

    /// <summary><c>true</c>: record this container's new flows even when it is enforced
    /// (audited containers always are), for <c>whalewall suggest</c>.</summary>
    public const string Learn = "whalewall.learn";

    /// <summary>Hostile-input limits: a label cannot make WhaleWall allocate without bound.</summary>
    public const int MaxRulesLabelBytes = 64 * 1024;
    public const int MaxRules = 256;
    public const int MaxListLength = 256;

    /// <summary>The kernel stores a log prefix in 128 bytes including its terminating NUL.</summary>
    public const int MaxLogPrefixBytes = 127;
}
