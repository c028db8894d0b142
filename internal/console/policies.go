package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// The admission policies page: the policy documents central serves to the
// webhooks (`bulwark admission serve --policy-from-server`), each with its
// version, who changed it last and when; a document's page shows its YAML,
// and administrators edit, create and delete documents there. A document
// is validated exactly as the API validates it (Deps.PutAdmissionPolicy:
// the webhook's loader, with the other stored documents), so a bad one is
// refused with its line and the text stays in the form. Every change is
// written to the audit log with the API's action names.

type policyRow struct {
	Name, UpdatedBy string
	Version         int64
	UpdatedAt       time.Time
	Bytes, Docs     int
	Href            string
}

type policiesData struct {
	*pageData
	Rows    []policyRow
	CanEdit bool
	// The new-document form (open after a refused create).
	New     policyForm
	NewOpen bool
}

type policyForm struct {
	Name, YAML, Err string
}

type policyData struct {
	*pageData
	Policy  *store.AdmissionPolicy
	CanEdit bool
	Form    policyForm
}

// maxPolicyRows bounds the list (documents are few: each holds many
// policies).
const maxPolicyRows = 1000

func (c *Console) policiesPage(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	d := &policiesData{pageData: c.pageData(r, "policies", "Admission policies")}
	d.Flash = c.takeFlash(w, r)
	c.renderPolicies(w, r, http.StatusOK, d)
}

func (c *Console) renderPolicies(w http.ResponseWriter, r *http.Request, status int, d *policiesData) {
	ps, _, err := c.st.ListAdmissionPolicies(r.Context())
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d.CanEdit = c.deps.PutAdmissionPolicy != nil && d.User.Admin()
	for i, p := range ps {
		if i == maxPolicyRows {
			break
		}
		d.Rows = append(d.Rows, policyRow{Name: p.Name, UpdatedBy: p.UpdatedBy, Version: p.Version, UpdatedAt: p.UpdatedAt,
			Bytes: len(p.YAML), Docs: countDocuments(p.YAML), Href: c.url("/policies/" + p.Name)})
	}
	c.render(w, r, status, "policies", d)
}

// countDocuments counts the YAML documents of a file (its "---" lines).
func countDocuments(y string) int {
	n := 0
	for doc := range strings.SplitSeq("\n"+y, "\n---") {
		if strings.TrimSpace(doc) != "" {
			n++
		}
	}
	return n
}

func (c *Console) policyPage(w http.ResponseWriter, r *http.Request) {
	d, ok := c.policyData(w, r)
	if !ok {
		return
	}
	d.Flash = c.takeFlash(w, r)
	d.Form.YAML = d.Policy.YAML
	c.render(w, r, http.StatusOK, "policy", d)
}

// policyData loads the document named in the path (false: answered with a
// 404 or an error).
func (c *Console) policyData(w http.ResponseWriter, r *http.Request) (*policyData, bool) {
	name := r.PathValue("name")
	ps, _, err := c.st.ListAdmissionPolicies(r.Context())
	if err != nil {
		c.storeError(w, r, err)
		return nil, false
	}
	for i := range ps {
		if ps[i].Name == name {
			d := &policyData{pageData: c.pageData(r, "policies", "Policy "+name), Policy: &ps[i]}
			d.CanEdit = c.deps.PutAdmissionPolicy != nil && d.User.Admin()
			return d, true
		}
	}
	c.errorPage(w, r, http.StatusNotFound, "No such policy document.")
	return nil, false
}

// maxPolicyForm bounds a submitted document (the API's policy.MaxFileBytes
// is larger; a form this big is a mistake).
const maxPolicyForm = 1 << 20

// policySave stores a document: an edit (POST /policies/{name}) or a new
// one (POST /policies, name in the form).
func (c *Console) policySave(w http.ResponseWriter, r *http.Request) {
	if c.deps.PutAdmissionPolicy == nil {
		c.errorPage(w, r, http.StatusNotFound, "Editing policies is not available.")
		return
	}
	p := principalFrom(r.Context())
	name, create := r.PathValue("name"), r.PathValue("name") == ""
	if create {
		name = strings.TrimSpace(r.PostForm.Get("name"))
	}
	text := strings.ReplaceAll(r.PostForm.Get("yaml"), "\r\n", "\n")
	fail := func(status int, msg string) {
		form := policyForm{Name: name, YAML: text, Err: msg}
		if len(form.YAML) > maxPolicyForm {
			form.YAML = ""
		}
		if len(form.Name) > store.MaxAdmissionPolicyName || !cleanText(form.Name) {
			form.Name = ""
		}
		if create {
			d := &policiesData{pageData: c.pageData(r, "policies", "Admission policies"), New: form, NewOpen: true}
			c.renderPolicies(w, r, status, d)
			return
		}
		d, ok := c.policyData(w, r)
		if !ok {
			return
		}
		d.Form = form
		c.render(w, r, status, "policy", d)
	}
	if len(text) > maxPolicyForm {
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("The document is larger than %d bytes.", maxPolicyForm))
		return
	}
	if create {
		ps, _, err := c.st.ListAdmissionPolicies(r.Context())
		if err != nil {
			c.storeError(w, r, err)
			return
		}
		for _, x := range ps {
			if x.Name == name {
				fail(http.StatusConflict, fmt.Sprintf("A document named %q exists: edit it on its page.", name))
				return
			}
		}
	}
	saved, n, err := c.deps.PutAdmissionPolicy(r.Context(), name, text, p.Actor)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.errorPage(w, r, http.StatusNotFound, "No such policy document.")
			return
		}
		// Validation errors name the line at fault; they are the
		// loader's messages about the submitted text.
		fail(http.StatusBadRequest, err.Error())
		return
	}
	c.audit(r.Context(), p.Actor, "admission.policy.put", "admission/policy/"+saved.Name,
		map[string]any{"version": saved.Version, "bytes": len(text), "policies": n, "console": true})
	c.log.InfoContext(r.Context(), "console: admission policy saved", "actor", p.Actor, "policy", saved.Name, "version", saved.Version)
	c.setFlash(w, "ok", fmt.Sprintf("Saved %s (version %d, %d policies). Webhooks polling central load it within their poll interval.",
		saved.Name, saved.Version, n))
	http.Redirect(w, r, c.url("/policies/"+saved.Name), http.StatusSeeOther)
}

func (c *Console) policyDelete(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	name := r.PathValue("name")
	err := c.st.DeleteAdmissionPolicy(r.Context(), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.errorPage(w, r, http.StatusNotFound, "No such policy document.")
		return
	case err != nil:
		c.storeError(w, r, err)
		return
	}
	c.audit(r.Context(), p.Actor, "admission.policy.delete", "admission/policy/"+name, map[string]any{"console": true})
	c.log.InfoContext(r.Context(), "console: admission policy deleted", "actor", p.Actor, "policy", name)
	c.setFlash(w, "ok", fmt.Sprintf("Deleted %s.", name))
	http.Redirect(w, r, c.url("/policies"), http.StatusSeeOther)
}
