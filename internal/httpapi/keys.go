package httpapi

import "github.com/theaterscriptpro/tsp/redisx"

// The service's own Redis keys, named as in the original setup guide and
// built through redisx's one key builder (its prefix, escaping, and the
// entity's id as the Cluster hash tag). The toolkit names its keys itself:
// session:{…} (session), ratelimit:{…} (ratelimit) and the response
// cache's entries under the namespaces below (httpcache).
const (
	nsUser         = "user"
	nsScript       = "script"
	nsScripts      = "scripts" // the response cache's List adds ":list": scripts:list:{params}
	nsUserScripts  = "scripts:user"
	nsUserLicenses = "licenses:user"
	nsScriptViews  = "views:script"
)

// domainKeys adds the service's key names to the client's builder.
type domainKeys struct{ redisx.Keys }

// User is the cache-aside key of a user's public profile: user:{id}.
func (k domainKeys) User(id string) string { return k.Tagged(nsUser, id) }

// Script is the response-cache key of one script, GET /api/scripts/{id}:
// script:{id}.
func (k domainKeys) Script(id string) string { return k.Tagged(nsScript, id) }

// LicensesByUser is the cache-aside key of a user's licences:
// licenses:user:{id}.
func (k domainKeys) LicensesByUser(userID string) string { return k.Tagged(nsUserLicenses, userID) }

// ScriptViews is the view counter of a script: views:script:{id}. It shares
// the script's hash tag.
func (k domainKeys) ScriptViews(id string) string { return k.Tagged(nsScriptViews, id) }

// TopViews is the bounded ranking of the most-viewed scripts that cache
// warming reads: views:top.
func (k domainKeys) TopViews() string { return k.Join("views", "top") }

// Ready is the key /readyz writes to check that Redis takes writes: readyz.
func (k domainKeys) Ready() string { return k.Join("readyz") }
