package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Cluster is a Kubernetes cluster reporting to central.
type Cluster struct {
	ID           int64
	Name         string
	Description  string
	Labels       map[string]string
	AgentVersion string
	CreatedAt    time.Time
	// LastSeen is the last report from the cluster's agents.
	LastSeen time.Time
}

// UpsertCluster registers a cluster or updates its description, labels
// and agent version, and marks it seen now. Clusters are keyed by name.
func (s *Store) UpsertCluster(ctx context.Context, c Cluster) (*Cluster, error) {
	if c.Name == "" {
		return nil, fmt.Errorf("upsert cluster: %w", invalid("cluster name is empty"))
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	labels, _ := json.Marshal(c.Labels)
	now := s.now()
	out, err := s.scanCluster(s.queryRow(ctx, s.w, `INSERT INTO clusters (name, description, labels, agent_version, created_at, last_seen)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET description = excluded.description, labels = excluded.labels,
			agent_version = excluded.agent_version, last_seen = excluded.last_seen
		RETURNING `+clusterCols, c.Name, c.Description, string(labels), c.AgentVersion, s.ts(now), s.ts(now)))
	if err != nil {
		return nil, s.wrapErr("upsert cluster "+c.Name, err)
	}
	return out, nil
}

// TouchCluster marks a cluster seen (an agent heartbeat).
func (s *Store) TouchCluster(ctx context.Context, name string) error {
	res, err := s.exec(ctx, s.w, `UPDATE clusters SET last_seen = ? WHERE name = ?`, s.ts(s.now()), name)
	if err != nil {
		return s.wrapErr("touch cluster "+name, err)
	}
	return affectedOne(res, "touch cluster "+name)
}

const clusterCols = `id, name, description, labels, agent_version, created_at, last_seen`

func (s *Store) scanCluster(sc scanner) (*Cluster, error) {
	var c Cluster
	var labels string
	if err := sc.Scan(&c.ID, &c.Name, &c.Description, &labels, &c.AgentVersion, tcol(&c.CreatedAt), tcol(&c.LastSeen)); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(labels), &c.Labels); err != nil {
		return nil, fmt.Errorf("cluster %s labels: %w", c.Name, err)
	}
	return &c, nil
}

// GetCluster returns a cluster by name.
func (s *Store) GetCluster(ctx context.Context, name string) (*Cluster, error) {
	c, err := s.scanCluster(s.queryRow(ctx, s.r, `SELECT `+clusterCols+` FROM clusters WHERE name = ?`, name))
	if err != nil {
		return nil, s.wrapErr("get cluster "+name, err)
	}
	return c, nil
}

// ListClusters returns all clusters by name (few; no paging).
func (s *Store) ListClusters(ctx context.Context) ([]Cluster, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+clusterCols+` FROM clusters ORDER BY name`)
	if err != nil {
		return nil, s.wrapErr("list clusters", err)
	}
	defer rows.Close()
	var out []Cluster
	for rows.Next() {
		c, err := s.scanCluster(rows)
		if err != nil {
			return nil, s.wrapErr("list clusters", err)
		}
		out = append(out, *c)
	}
	return out, s.wrapErr("list clusters", rows.Err())
}

// DeleteCluster removes a cluster (sightings of images in it stay).
func (s *Store) DeleteCluster(ctx context.Context, name string) error {
	res, err := s.exec(ctx, s.w, `DELETE FROM clusters WHERE name = ?`, name)
	if err != nil {
		return s.wrapErr("delete cluster "+name, err)
	}
	return affectedOne(res, "delete cluster "+name)
}
